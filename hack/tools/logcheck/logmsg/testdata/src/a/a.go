package a

import (
	"errors"
	"fmt"

	"github.com/go-logr/logr"
)

// Logger is an alias, like klog.Logger.
type Logger = logr.Logger

const attaching = "Attaching volume"

type notALogger struct{}

func (notALogger) Info(msg string) {}

func calls(log logr.Logger, alias Logger, ptr *logr.Logger, other notALogger, name string) {
	err := errors.New("boom")
	log.Info("Attached volume", "volume", name)
	log.Info(attaching, "volume", name)
	log.Info("Attached " + "volume")
	log.V(4).Info("Detached volume")
	log.Error(err, "Failed to attach", "volume", name)
	log.WithValues("volume", name).Info("Patched")

	log.Info(fmt.Sprintf("Attached %s", name))        // want `the message of Info should be a constant string`
	log.Info(name)                                    // want `the message of Info should be a constant string`
	log.V(4).Info("Attached " + name)                 // want `the message of Info should be a constant string`
	log.Error(err, err.Error())                       // want `the message of Error should be a constant string`
	alias.Info(name)                                  // want `the message of Info should be a constant string`
	ptr.Error(err, name)                              // want `the message of Error should be a constant string`
	log.WithValues("volume", name).Info(name, "a", 1) // want `the message of Info should be a constant string`
	other.Info(name)
}
