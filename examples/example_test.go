package examples_test

import (
	"context"
	"fmt"

	"github.com/sluice-data/sluice"
	"github.com/sluice-data/sluice/examples"
)

// The job prints its result when it commits, whatever the parallelism: the
// generated rows depend only on the seed.
func ExampleSumByKey() {
	p, err := examples.SumByKey.Build(map[string]string{"rows": "100000", "keys": "1000", "seed": "7"})
	if err != nil {
		fmt.Println(err)
		return
	}
	if _, err := sluice.Run(context.Background(), p, sluice.Options{Parallelism: 4}); err != nil {
		fmt.Println(err)
	}
	// Output:
	// 1000 keys; the 10 with the greatest sum:
	// KEY  SUM
	// 715  68691221
	// 988  65267972
	// 776  64905286
	// 932  64405570
	// 364  63429782
	// 229  63292620
	// 273  63198800
	// 899  62921915
	// 770  62869059
	// 123  62588144
}

func ExampleWordCount() {
	p, err := examples.WordCount.Build(nil) // the built-in text
	if err != nil {
		fmt.Println(err)
		return
	}
	if _, err := sluice.Run(context.Background(), p, sluice.Options{Parallelism: 3}); err != nil {
		fmt.Println(err)
	}
	// Output:
	// 113 distinct words; the 10 with the greatest count:
	// WORD  COUNT
	// of    8
	// and   7
	// i     7
	// was   7
	// that  6
	// were  6
	// a     5
	// he    5
	// the   5
	// in    4
}
