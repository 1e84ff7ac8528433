package parquetio_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/sluice-data/sluice/connectors/parquetio"
	"github.com/sluice-data/sluice/internal/testenv"
	"github.com/sluice-data/sluice/stages"
)

// s3Bucket creates a fresh bucket on the test S3 server (testenv.S3Bucket).
func s3Bucket(t *testing.T) (client *s3.Client, bucket string, urlOf func(key string) string) {
	t.Helper()
	return testenv.S3Bucket(t, "pq")
}

func s3Keys(t *testing.T, client *s3.Client, bucket string) []string {
	t.Helper()
	return testenv.S3Keys(t, client, bucket)
}

func TestS3RoundTrip(t *testing.T) {
	client, bucket, urlOf := s3Bucket(t)
	in := events(30_000)
	out := urlOf("lake/events")
	write(t, in, out, parquetio.RowGroupRows(4000))
	var st parquetio.Stats
	equalEvents(t, read[Event](t, out, parquetio.WithStats(&st)), in)
	keys := s3Keys(t, client, bucket)
	for _, k := range keys {
		if !strings.HasPrefix(k, "lake/events/part-") && k != "lake/events/_SUCCESS" && !strings.HasPrefix(k, "lake/events/_sluice/lease/") {
			t.Errorf("unexpected key %s", k)
		}
	}
	t.Logf("%d keys; read with %d GETs, %d bytes, %d row groups", len(keys), st.Requests.Load(), st.BytesRead.Load(), st.RowGroups.Load())

	// Overwrite replaces; ErrorIfExists refuses.
	write(t, in[:1000], out, parquetio.Overwrite)
	equalEvents(t, read[Event](t, out), in[:1000])
	p := stages.NewPipeline("again")
	parquetio.Write(stages.FromSlice(p, in), out)
	if _, err := runJob(t, p); !errors.Is(err, parquetio.ErrExists) {
		t.Fatalf("ErrorIfExists: got %v", err)
	}
}

func TestS3PartitionedPruning(t *testing.T) {
	client, bucket, urlOf := s3Bucket(t)
	in := events(30_000)
	out := urlOf("lake/events")
	write(t, in, out, parquetio.PartitionBy("year", "month"), parquetio.RowGroupRows(100))
	var st parquetio.Stats
	var o opens
	got := read[Event](t, out, parquetio.Where("year", "=", 2022), parquetio.Where("month", "<=", 2),
		parquetio.Where("id", "<", 10_000), parquetio.WithStats(&st), o.hook())
	equalEvents(t, got, keep(in, func(e Event) bool { return e.Year == 2022 && e.Month <= 2 && e.ID < 10_000 }))
	for _, f := range o.list() {
		if !strings.Contains(f, "/lake/events/year=2022/month=1/") && !strings.Contains(f, "/lake/events/year=2022/month=2/") {
			t.Errorf("opened %s, a file of a pruned partition", f)
		}
	}
	if st.PartitionsPruned.Load() != 2+10 || st.RowGroupsSkipped.Load() == 0 {
		t.Errorf("pruned %d partitions (want 12), skipped %d row groups", st.PartitionsPruned.Load(), st.RowGroupsSkipped.Load())
	}
	t.Logf("%d GETs, %d bytes; %d row groups, %d skipped", st.Requests.Load(), st.BytesRead.Load(), st.RowGroups.Load(), st.RowGroupsSkipped.Load())

	// A failed job leaves nothing in the bucket beyond the earlier output.
	before := len(s3Keys(t, client, bucket))
	if err := failingJob(t, in, urlOf("lake/failed"), 25_000); err == nil {
		t.Fatal("the failing job succeeded")
	}
	if after := s3Keys(t, client, bucket); len(after) != before {
		t.Fatalf("the failed job left %d keys behind", len(after)-before)
	}
}
