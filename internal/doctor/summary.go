package doctor

import "fmt"

// Summary counts verdicts.
type Summary struct {
	OK   int `json:"ok"`
	Warn int `json:"warn"`
	Fail int `json:"fail"`
	Skip int `json:"skip"`
}

// Summarize counts the verdicts of results.
func Summarize(results []Result) Summary {
	var s Summary
	for _, r := range results {
		switch r.Status {
		case StatusOK:
			s.OK++
		case StatusWarn:
			s.Warn++
		case StatusFail:
			s.Fail++
		case StatusSkip:
			s.Skip++
		}
	}
	return s
}

// ExitCode is 1 when a check failed, else 0: warnings alone do not fail.
func (s Summary) ExitCode() int {
	if s.Fail > 0 {
		return ExitFailed
	}
	return ExitOK
}

// String is the summary line.
func (s Summary) String() string {
	verdict := "healthy"
	switch {
	case s.Fail > 0:
		verdict = "BROKEN"
	case s.Warn > 0:
		verdict = "healthy with warnings"
	}
	return fmt.Sprintf("doctor: %s: %d ok, %d warnings, %d failed, %d skipped", verdict, s.OK, s.Warn, s.Fail, s.Skip)
}
