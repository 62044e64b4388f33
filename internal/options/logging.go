package options

import "github.com/csi-attacher/csi-attacher/internal/logging"

// Logging is what the process logger is built from (logging.New): --v and
// --logging-format.
func (o *Options) Logging() logging.Config {
	return logging.Config{Verbosity: o.Verbosity, Format: o.LogFormat}
}
