package crfencing

import (
	"errors"

	"github.com/go-logr/logr"

	fencing "leasefence.io/fencing/go"
)

// QuietNotLeader returns a logger that reports an error matching
// fencing.ErrNotLeader as a V(1) message instead of an error, and passes
// everything else through.
//
// controller-runtime (v0.24, v0.25) logs every error a Reconciler returns
// as "Reconciler error", with a stack trace, and requeues the request with
// rate limiting; it has no error type for a quiet requeue
// (reconcile.TerminalError is logged too, and not retried). A write refused
// because this process does not lead is expected around a change of
// leader: the request is still requeued, as for any error, but logged
// quietly. NewManager installs it as the manager's and the controllers'
// logger.
func QuietNotLeader(l logr.Logger) logr.Logger {
	sink := l.GetSink()
	if sink == nil {
		return l
	}
	// One more frame (quietSink's method) stands between the caller and
	// the sink.
	if cd, ok := sink.(logr.CallDepthLogSink); ok {
		sink = cd.WithCallDepth(1)
	}
	return logr.New(quietSink{sink})
}

type quietSink struct{ logr.LogSink }

// Init does nothing: the wrapped sink was initialised by its own logger,
// and some sinks (zapr) change themselves in place when initialised again.
func (quietSink) Init(logr.RuntimeInfo) {}

func (q quietSink) Error(err error, msg string, kv ...any) {
	if errors.Is(err, fencing.ErrNotLeader) {
		if q.LogSink.Enabled(1) {
			q.LogSink.Info(1, msg+" (not the leader: requeued)", append(kv, "error", err.Error())...)
		}
		return
	}
	q.LogSink.Error(err, msg, kv...)
}

func (q quietSink) WithValues(kv ...any) logr.LogSink { return quietSink{q.LogSink.WithValues(kv...)} }

func (q quietSink) WithName(name string) logr.LogSink { return quietSink{q.LogSink.WithName(name)} }

// WithCallDepth keeps the caller's file and line right for sinks that
// report them.
func (q quietSink) WithCallDepth(depth int) logr.LogSink {
	if cd, ok := q.LogSink.(logr.CallDepthLogSink); ok {
		return quietSink{cd.WithCallDepth(depth)}
	}
	return q
}
