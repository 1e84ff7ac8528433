package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// S3Bucket creates a fresh bucket on the S3 server at SLUICE_S3_ENDPOINT
// (scripts/test.sh starts VersityGW there), deleted when t ends, and
// returns a function that makes gocloud URLs of keys in it. gocloud's
// s3blob cannot create buckets, so the bucket is made through the AWS SDK
// that s3blob is built on. Without a server the test is skipped (or fails
// under the test script).
func S3Bucket(t testing.TB, prefix string) (client *s3.Client, bucket string, urlOf func(key string) string) {
	t.Helper()
	endpoint := os.Getenv("SLUICE_S3_ENDPOINT")
	if endpoint == "" {
		Need(t, "SLUICE_S3_ENDPOINT is not set: no S3 server to test against (scripts/test.sh starts VersityGW and sets it)")
	}
	key, secret := os.Getenv("AWS_ACCESS_KEY_ID"), os.Getenv("AWS_SECRET_ACCESS_KEY")
	if key == "" || secret == "" {
		Need(t, "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY must be set for the S3 server at "+endpoint)
	}
	client = s3.New(s3.Options{
		BaseEndpoint: aws.String(endpoint),
		UsePathStyle: true,
		Region:       "us-east-1",
		Credentials:  credentials.NewStaticCredentialsProvider(key, secret, ""),
	})
	var b [4]byte
	_, _ = rand.Read(b[:])
	bucket = prefix + "-" + strings.ToLower(strings.ReplaceAll(t.Name(), "/", "-"))
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

// S3Keys lists every key in bucket.
func S3Keys(t testing.TB, client *s3.Client, bucket string) []string {
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

func deleteBucket(t testing.TB, client *s3.Client, bucket string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, k := range S3Keys(t, client, bucket) {
		_, _ = client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(bucket), Key: aws.String(k)})
	}
	_, _ = client.DeleteBucket(ctx, &s3.DeleteBucketInput{Bucket: aws.String(bucket)})
}
