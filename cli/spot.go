package cli

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// spotPoll is how often a node asks for a spot interruption notice: AWS
// recommends every 5 s of the notice's two minutes.
const spotPoll = 5 * time.Second

// spotNotice returns the notice at u, an instance metadata URL, or ""
// while there is none: AWS's spot/instance-action answers 404 until a
// notice (IMDSv2's session token is taken first when the service gives
// one), GCE's instance/preempted answers FALSE.
func spotNotice(ctx context.Context, hc *http.Client, u *url.URL) (string, error) {
	token := ""
	tu := *u
	tu.Path, tu.RawQuery = "/latest/api/token", ""
	if req, err := http.NewRequestWithContext(ctx, http.MethodPut, tu.String(), nil); err == nil {
		req.Header.Set("X-aws-ec2-metadata-token-ttl-seconds", "300")
		if resp, err := hc.Do(req); err == nil {
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				token = strings.TrimSpace(string(b))
			}
		}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return "", err
	}
	req.Header.Set("Metadata-Flavor", "Google")
	if token != "" {
		req.Header.Set("X-aws-ec2-metadata-token", token)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	body := strings.TrimSpace(string(b))
	switch {
	case resp.StatusCode == http.StatusNotFound:
		return "", nil
	case resp.StatusCode != http.StatusOK:
		return "", fmt.Errorf("%s answered %s", u.Redacted(), resp.Status)
	case body == "" || strings.EqualFold(body, "false"):
		return "", nil
	}
	return body, nil
}

// watchSpot polls u for a spot interruption notice until ctx ends and,
// when one comes, calls leave (the node then drains and leaves as at
// SIGTERM). A metadata service that does not answer is warned of once.
func (c *invocation) watchSpot(ctx context.Context, node string, u *url.URL, leave func()) {
	hc := &http.Client{Timeout: 2 * time.Second}
	tick := time.NewTicker(spotPoll)
	defer tick.Stop()
	warned := false
	for {
		notice, err := spotNotice(ctx, hc, u)
		switch {
		case err != nil && ctx.Err() == nil && !warned:
			c.warnf("node %s: --spot-notice: %v (asking again every %v)", node, err, spotPoll)
			warned = true
		case notice != "":
			c.warnf("node %s: spot interruption notice (%s): draining and leaving", node, notice)
			leave()
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}
