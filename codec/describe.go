package codec

import (
	"hash/fnv"
	"reflect"
	"strconv"
	"strings"
)

// descPrefix starts every description: a new wire format changes every
// fingerprint.
const descPrefix = "sluice-codec/1 "

// fingerprintLocked is the Fingerprint of t: FNV-1a 64 of describe(t). mu
// must be held (it reads the registry).
func fingerprintLocked(t reflect.Type) Fingerprint {
	h := fnv.New64a()
	h.Write([]byte(describe(t)))
	return Fingerprint(h.Sum64())
}

// describe is the canonical description of t as encoded, e.g.
//
//	struct{UserID i64;Country string;Tags []string;Next *rec(2)}
//
// A type that refers to itself is rec(n), n the number of enclosing
// composite types up to it.
func describe(t reflect.Type) string {
	var b strings.Builder
	b.WriteString(descPrefix)
	describeTo(&b, t, nil)
	return b.String()
}

func describeTo(b *strings.Builder, t reflect.Type, stack []reflect.Type) {
	if r, ok := registry[t]; ok {
		b.WriteString(r.desc)
		return
	}
	if t == timeType {
		b.WriteString("time")
		return
	}
	if isMarshaler(t) {
		b.WriteString("binary(" + t.PkgPath() + "." + t.Name() + ")")
		return
	}
	for i := len(stack) - 1; i >= 0; i-- {
		if stack[i] == t {
			b.WriteString("rec(" + strconv.Itoa(len(stack)-i) + ")")
			return
		}
	}
	switch t.Kind() {
	case reflect.Bool:
		b.WriteString("bool")
	case reflect.Int8:
		b.WriteString("i8")
	case reflect.Int16:
		b.WriteString("i16")
	case reflect.Int32:
		b.WriteString("i32")
	case reflect.Int64, reflect.Int:
		b.WriteString("i64")
	case reflect.Uint8:
		b.WriteString("u8")
	case reflect.Uint16:
		b.WriteString("u16")
	case reflect.Uint32:
		b.WriteString("u32")
	case reflect.Uint64, reflect.Uint, reflect.Uintptr:
		b.WriteString("u64")
	case reflect.Float32:
		b.WriteString("f32")
	case reflect.Float64:
		b.WriteString("f64")
	case reflect.Complex64:
		b.WriteString("c64")
	case reflect.Complex128:
		b.WriteString("c128")
	case reflect.String:
		b.WriteString("string")
	case reflect.Pointer:
		b.WriteString("*")
		describeTo(b, t.Elem(), append(stack, t))
	case reflect.Slice:
		b.WriteString("[]")
		describeTo(b, t.Elem(), append(stack, t))
	case reflect.Array:
		b.WriteString("[" + strconv.Itoa(t.Len()) + "]")
		if t.Len() > 0 {
			describeTo(b, t.Elem(), append(stack, t))
		}
	case reflect.Map:
		b.WriteString("map[")
		describeTo(b, t.Key(), append(stack, t))
		b.WriteString("]")
		describeTo(b, t.Elem(), append(stack, t))
	case reflect.Struct:
		b.WriteString("struct{")
		for i := range t.NumField() {
			f := t.Field(i)
			if i > 0 {
				b.WriteString(";")
			}
			b.WriteString(f.Name + " ")
			describeTo(b, f.Type, append(stack, t))
		}
		b.WriteString("}")
	default: // refused by compile before it is described
		b.WriteString(t.Kind().String())
	}
}
