package codec

import (
	"reflect"
	"testing"
	"time"
)

type descTree struct {
	Kids []descTree
	Up   *descNode
}

type descNode struct{ T *descTree }

func TestDescribe(t *testing.T) {
	for _, tc := range []struct {
		t    reflect.Type
		want string
	}{
		{reflect.TypeFor[struct {
			ID   int64
			N    int
			At   time.Time
			Vals []float32
			M    map[string]*uint8
			A    [2]bool
			Z    [0]func()
			C    complex64
		}](), "struct{ID i64;N i64;At time;Vals []f32;M map[string]*u8;A [2]bool;Z [0];C c64}"},
		{reflect.TypeFor[descTree](), "struct{Kids []rec(2);Up *struct{T *rec(4)}}"},
		{reflect.TypeFor[descNode](), "struct{T *struct{Kids []rec(2);Up *rec(4)}}"},
	} {
		if got := describe(tc.t); got != descPrefix+tc.want {
			t.Errorf("describe(%s) =\n%s\nwant\n%s%s", tc.t, got, descPrefix, tc.want)
		}
	}
}
