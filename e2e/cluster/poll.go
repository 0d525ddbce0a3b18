package cluster

import (
	"context"
	"fmt"
	"time"
)

// Poll calls cond every interval until it reports done, returns an error, or
// timeout passes. The API server applies some changes asynchronously (webhook
// registrations, token invalidation), so tests wait on a condition they can
// observe instead of sleeping. cond's last note is included in the timeout
// error, to say what was still missing.
func Poll(ctx context.Context, timeout, interval time.Duration, cond func(ctx context.Context) (done bool, note string, err error)) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	note := "condition never checked"
	for {
		done, n, err := cond(ctx)
		if err != nil {
			return err
		}
		if done {
			return nil
		}
		note = n
		if err := sleepCtx(ctx, interval); err != nil {
			return fmt.Errorf("not done within %s: %s", timeout, note)
		}
	}
}
