package parquetio_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/sluice-data/sluice/connectors/parquetio"
	"github.com/sluice-data/sluice/internal/testenv"
	"github.com/sluice-data/sluice/stages"
)

// s3Bucket creates a fresh bucket on the S3 server at SLUICE_S3_ENDPOINT
// (scripts/test.sh starts VersityGW there) and returns a function that
// makes gocloud URLs of keys in it. gocloud's s3blob cannot create buckets,
// so the bucket is made through the AWS SDK that s3blob is built on.
func s3Bucket(t *testing.T) (client *s3.Client, bucket string, urlOf func(key string) string) {
	t.Helper()
	endpoint := os.Getenv("SLUICE_S3_ENDPOINT")
	if endpoint == "" {
		testenv.Need(t, "SLUICE_S3_ENDPOINT is not set: no S3 server to test against (scripts/test.sh starts VersityGW and sets it)")
	}
	key, secret := os.Getenv("AWS_ACCESS_KEY_ID"), os.Getenv("AWS_SECRET_ACCESS_KEY")
	if key == "" || secret == "" {
		testenv.Need(t, "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY must be set for the S3 server at "+endpoint)
	}
	client = s3.New(s3.Options{
		BaseEndpoint: aws.String(endpoint),
		UsePathStyle: true,
		Region:       "us-east-1",
		Credentials:  credentials.NewStaticCredentialsProvider(key, secret, ""),
	})
	var b [4]byte
	_, _ = rand.Read(b[:])
	bucket = "pq-" + strings.ToLower(strings.ReplaceAll(t.Name(), "/", "-"))
	bucket = strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' {
			return r
		}
		return '-'
	}, bucket)
	bucket = bucket[:min(len(bucket), 50)] + "-" + hex.EncodeToString(b[:])
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
		t.Fatalf("creating bucket %s at %s: %v", bucket, endpoint, err)
	}
	t.Cleanup(func() { deleteBucket(t, client, bucket) })
	q := url.Values{}
	q.Set("endpoint", endpoint)
	q.Set("use_path_style", "true")
	q.Set("region", "us-east-1")
	q.Set("request_checksum_calculation", "when_required")
	q.Set("response_checksum_validation", "when_required")
	return client, bucket, func(key string) string {
		return fmt.Sprintf("s3://%s/%s?%s", bucket, key, q.Encode())
	}
}

func s3Keys(t *testing.T, client *s3.Client, bucket string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var keys []string
	p := s3.NewListObjectsV2Paginator(client, &s3.ListObjectsV2Input{Bucket: aws.String(bucket)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			t.Fatalf("listing %s: %v", bucket, err)
		}
		for _, o := range page.Contents {
			keys = append(keys, aws.ToString(o.Key))
		}
	}
	return keys
}

func deleteBucket(t *testing.T, client *s3.Client, bucket string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, k := range s3Keys(t, client, bucket) {
		_, _ = client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(bucket), Key: aws.String(k)})
	}
	_, _ = client.DeleteBucket(ctx, &s3.DeleteBucketInput{Bucket: aws.String(bucket)})
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
