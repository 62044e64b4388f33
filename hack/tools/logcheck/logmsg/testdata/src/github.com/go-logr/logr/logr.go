// Package logr is the part of github.com/go-logr/logr the analyzer looks at.
package logr

type Logger struct{}

func (Logger) Info(msg string, keysAndValues ...any)             {}
func (Logger) Error(err error, msg string, keysAndValues ...any) {}
func (l Logger) V(level int) Logger                              { return l }
func (l Logger) WithValues(keysAndValues ...any) Logger          { return l }
