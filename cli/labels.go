package cli

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/sluice-data/sluice/metrics"
)

// labelsFlag gathers --label KEY=VALUE[,KEY=VALUE...], repeatable: the
// user's labels of a job, carried into its metrics (as constant labels of
// every series), its JSON and its summary, for cost attribution. A key is
// a Prometheus label name (metrics.CheckLabels); a value cannot hold a
// comma.
type labelsFlag map[string]string

func (l labelsFlag) String() string { return formatLabels(l) }

func (l labelsFlag) Set(s string) error {
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if !ok || k == "" || v == "" {
			return fmt.Errorf("label %q: want KEY=VALUE (team=search), several separated by commas", kv)
		}
		if err := metrics.CheckLabels(map[string]string{k: v}); err != nil {
			if fixed := strings.NewReplacer("-", "_", ".", "_", "/", "_").Replace(k); fixed != k &&
				metrics.CheckLabels(map[string]string{fixed: v}) == nil {
				return fmt.Errorf("%w (%s=%s would do)", err, fixed, v)
			}
			return err
		}
		if old, dup := l[k]; dup && old != v {
			return fmt.Errorf("label %s is given twice: %s and %s", k, old, v)
		}
		l[k] = v
	}
	return nil
}

// formatLabels renders labels as --label takes them, sorted by key.
func formatLabels(labels map[string]string) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(labels)) {
		parts = append(parts, k+"="+labels[k])
	}
	return strings.Join(parts, ",")
}
