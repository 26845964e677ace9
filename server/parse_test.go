package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestParseOrder(t *testing.T) {
	var p parser
	var b orderBody
	good := `{"request_id":"Ab.9_:-x","user_id":"u\u0031","items":[{"sku":"s1","qty":1},{"sku":"s2","qty":1000000,"z":[]}],"ttl_ms":1000,"unknown":{"a":[1,2]}}`
	if err := p.parseOrder([]byte(good), true, &b); err != nil {
		t.Fatal(err)
	}
	if string(b.requestID) != "Ab.9_:-x" || string(b.userID) != "u1" || b.n != 2 || string(b.items[1].sku) != "s2" ||
		b.items[1].qty != 1_000_000 || b.ttlMs != 1000 {
		t.Fatalf("parsed %+v", b)
	}
	if err := p.parseOrder([]byte(`{"request_id":"r","items":[{"sku":"s","qty":5}]}`), true, &b); err != nil {
		t.Fatal(err)
	}
	if b.userID != nil || b.ttlMs != TTLMsDefault {
		t.Fatalf("defaults: user %q ttl %d", b.userID, b.ttlMs)
	}
	// ttl_ms is ignored (an unknown field) on deduct.
	if err := p.parseOrder([]byte(`{"request_id":"r","items":[{"sku":"s","qty":5}],"ttl_ms":"x"}`), false, &b); err != nil {
		t.Fatal(err)
	}

	item := func(qty string) string { return `{"request_id":"r","items":[{"sku":"s","qty":` + qty + `}]}` }
	many := make([]string, ItemsMax+1)
	for i := range many {
		many[i] = fmt.Sprintf(`{"sku":"s%d","qty":1}`, i)
	}
	bad := []string{
		``, ` `, `null`, `"x"`, `1`, `[]`, `{`, `{"request_id":"r"`, `{}x`,
		`{"items":[{"sku":"s","qty":1}]}`,
		`{"request_id":null,"items":[{"sku":"s","qty":1}]}`,
		`{"request_id":7,"items":[{"sku":"s","qty":1}]}`,
		`{"request_id":"","items":[{"sku":"s","qty":1}]}`,
		`{"request_id":"é","items":[{"sku":"s","qty":1}]}`,
		`{"request_id":"a/b","items":[{"sku":"s","qty":1}]}`,
		`{"request_id":"` + strings.Repeat("x", IDBytesMax+1) + `","items":[{"sku":"s","qty":1}]}`,
		`{"request_id":"r","user_id":"","items":[{"sku":"s","qty":1}]}`,
		`{"request_id":"r","user_id":5,"items":[{"sku":"s","qty":1}]}`,
		`{"request_id":"r"}`,
		`{"request_id":"r","items":null}`,
		`{"request_id":"r","items":{}}`,
		`{"request_id":"r","items":[]}`,
		`{"request_id":"r","items":[1]}`,
		`{"request_id":"r","items":[{"qty":1}]}`,
		`{"request_id":"r","items":[{"sku":"s"}]}`,
		`{"request_id":"r","items":[{"sku":"s ","qty":1}]}`,
		`{"request_id":"r","items":[{"sku":"s","qty":1},{"sku":"s","qty":2}]}`,
		`{"request_id":"r","items":[` + strings.Join(many, ",") + `]}`,
		item(`0`), item(`-1`), item(`-0`), item(`1000001`), item(`1.0`), item(`1.5`), item(`1e3`), item(`1E3`),
		item(`01`), item(`+1`), item(`"1"`), item(`true`), item(`null`), item(`[1]`), item(`99999999999999999999999`),
		// A key twice: parsers disagree on which wins, so it is refused.
		`{"request_id":"r","items":[{"sku":"s","qty":50}],"items":[{"sku":"s","qty":1}]}`,
		`{"request_id":"r","request_id":"q","items":[{"sku":"s","qty":1}]}`,
		`{"request_id":"r","items":[{"sku":"s","qty":1,"qty":5}]}`,
		// Invalid JSON in a field that is not read is still invalid JSON.
		`{"request_id":"r","items":[{"sku":"s","qty":1}],"x":NaN}`,
		`{"request_id":"r","items":[{"sku":"s","qty":1}],"x":1e}`,
		`{"request_id":"r","items":[{"sku":"s","qty":1}],"x":01}`,
		`{"request_id":"r","items":[{"sku":"s","qty":1}],"x":"\q"}`,
		"{\"request_id\":\"r\",\"items\":[{\"sku\":\"s\",\"qty\":1}],\"x\":\"a\tb\"}",
		item(`NaN`), item(`inf`), item(`1-2`), item(`--1`),
	}
	for _, s := range bad {
		err := p.parseOrder([]byte(s), false, &b)
		var br *badRequestError
		if !errors.As(err, &br) || br.msg == "" {
			t.Errorf("parseOrder(%q) = %v, want a bad request", s, err)
		}
	}
	for _, s := range []string{`0`, `999`, `86400001`, `1000.0`, `"60000"`} {
		body := `{"request_id":"r","items":[{"sku":"s","qty":1}],"ttl_ms":` + s + `}`
		if err := p.parseOrder([]byte(body), true, &b); err == nil {
			t.Errorf("reserve ttl_ms %s accepted", s)
		}
	}
	// Exactly ItemsMax items are fine.
	if err := p.parseOrder([]byte(`{"request_id":"r","items":[`+strings.Join(many[:ItemsMax], ",")+`]}`), false, &b); err != nil || b.n != ItemsMax {
		t.Fatalf("64 items: %v %d", err, b.n)
	}
}

// TestParseDeepNesting: a body nested far deeper than any request is
// refused as a bad request with a message of bounded size. fastjson's
// validator recursed once per level and wrapped its error at each, so the
// cost grew with the square of the depth: 4,096 levels took seconds and
// gave a message of 190 KB, a default-limit body (64 KiB of '[') minutes.
func TestParseDeepNesting(t *testing.T) {
	var p parser
	var b orderBody
	for _, depth := range []int{1 << 12, BodyBytesMaxDefault} {
		for _, body := range []string{
			strings.Repeat("[", depth),
			strings.Repeat(`{"a":`, depth/5),
			`{"request_id":"r","items":[{"sku":"s","qty":1}],"x":` + strings.Repeat("[", depth/2) +
				strings.Repeat("]", depth/2) + `}`,
		} {
			err := p.parseOrder([]byte(body), false, &b)
			var br *badRequestError
			if !errors.As(err, &br) {
				t.Fatalf("depth %d: %v, want a bad request", depth, err)
			}
			if len(br.msg) > 16<<10 {
				t.Fatalf("depth %d: a message of %d bytes", depth, len(br.msg))
			}
		}
	}
}

// manyKeys is n keys ",\"<hex>\":0", to put in an object.
func manyKeys(n int) string {
	var sb strings.Builder
	for i := range n {
		fmt.Fprintf(&sb, `,"%x":0`, i)
	}
	return sb.String()
}

// TestParseManyKeys: objects with more keys than the duplicate check's stack
// buffer (16) are accepted when their keys differ and refused when one
// appears twice, at the top level and in an item.
func TestParseManyKeys(t *testing.T) {
	var p parser
	var b orderBody
	for _, n := range []int{15, 16, 17, 100, 9_000} {
		for _, body := range []string{
			`{"request_id":"r","items":[{"sku":"s","qty":1}]` + manyKeys(n) + `}`,
			`{"request_id":"r","items":[{"sku":"s","qty":1` + manyKeys(n) + `}]}`,
		} {
			if err := p.parseOrder([]byte(body), false, &b); err != nil {
				t.Fatalf("%d keys: %v", n, err)
			}
			// The first key and the last one again.
			for _, k := range []string{"0", fmt.Sprintf("%x", n-1)} {
				dup := strings.Replace(body, `,"0":0`, `,"0":0,"`+k+`":1`, 1)
				var br *badRequestError
				if err := p.parseOrder([]byte(dup), false, &b); !errors.As(err, &br) || !strings.Contains(br.msg, `"`+k+`" appears twice`) {
					t.Fatalf("%d keys, %q twice: %v", n, k, err)
				}
			}
		}
	}
}

// BenchmarkParseManyKeys: a 60 KiB body of 9,000 keys (unknown keys are
// allowed) against an array of the same size. Comparing each key with every
// earlier one made the keys cost about 100 times the array (50 ms a body);
// with a set past 16 keys they cost about the same.
func BenchmarkParseManyKeys(b *testing.B) {
	const n = 9_000
	for _, c := range []struct{ name, body string }{
		{"keys", `{"request_id":"r","items":[{"sku":"s","qty":1}]` + manyKeys(n) + `}`},
		{"array", `{"request_id":"r","items":[{"sku":"s","qty":1}],"pad":[0` + strings.Repeat(",0", 4*n) + `]}`},
	} {
		b.Run(c.name, func(b *testing.B) {
			var p parser
			var ob orderBody
			for b.Loop() {
				if err := p.parseOrder([]byte(c.body), false, &ob); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func TestParseOthers(t *testing.T) {
	var p parser
	var ref refBody
	if err := p.parseRef([]byte(`{"request_id":"r1","x":1}`), &ref); err != nil || string(ref.requestID) != "r1" {
		t.Fatalf("ref: %v %q", err, ref.requestID)
	}
	var ret returnBody
	if err := p.parseReturn([]byte(`{"return_id":"x","request_id":"r","items":[{"sku":"s","qty":2}]}`), &ret); err != nil ||
		string(ret.returnID) != "x" || ret.n != 1 || ret.items[0].qty != 2 {
		t.Fatalf("return: %v %+v", err, ret)
	}
	var sku skuBody
	if err := p.parseSKU([]byte(`{"total":1000000000000}`), &sku); err != nil || sku.total != TotalMax || sku.hasLimit {
		t.Fatalf("sku: %v %+v", err, sku)
	}
	if err := p.parseSKU([]byte(`{"total":0,"limit_per_user":0}`), &sku); err != nil || sku.total != 0 || !sku.hasLimit {
		t.Fatalf("sku: %v %+v", err, sku)
	}
	if err := p.parseSKU([]byte(`{"total":5,"limit_per_user":null}`), &sku); err != nil || sku.hasLimit {
		t.Fatalf("sku null limit: %v %+v", err, sku)
	}
	var rs restockBody
	if err := p.parseRestock([]byte(`{"request_id":"a","qty":7}`), &rs); err != nil || rs.qty != 7 {
		t.Fatalf("restock: %v %+v", err, rs)
	}
	for _, s := range []string{`{}`, `{"total":-1}`, `{"total":1000000000001}`, `{"total":1.5}`, `{"total":"1"}`,
		`{"total":1,"limit_per_user":-1}`, `{"total":1,"limit_per_user":1000001}`, `{"total":1,"limit_per_user":true}`} {
		if err := p.parseSKU([]byte(s), &sku); err == nil {
			t.Errorf("parseSKU(%s) accepted", s)
		}
	}
	for _, s := range []string{`{"request_id":"a"}`, `{"qty":1}`, `{"request_id":"a","qty":0}`, `{"request_id":"a","qty":1000001}`} {
		if err := p.parseRestock([]byte(s), &rs); err == nil {
			t.Errorf("parseRestock(%s) accepted", s)
		}
	}
	for _, s := range []string{`{"return_id":"x","items":[{"sku":"s","qty":1}]}`, `{"request_id":"r","items":[{"sku":"s","qty":1}]}`,
		`{"return_id":"x","request_id":"r"}`} {
		if err := p.parseReturn([]byte(s), &ret); err == nil {
			t.Errorf("parseReturn(%s) accepted", s)
		}
	}
}

func TestAppendJSONString(t *testing.T) {
	for _, s := range []string{"", "plain", `q"b\s`, "ctl\x00\x1f\n", "ünï", "bad\xff\xfeutf8"} {
		b := appendJSONString(nil, s)
		var got string
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatalf("%q -> %s: %v", s, b, err)
		}
		if want := strings.ToValidUTF8(s, "\uFFFD"); got != want && !strings.Contains(s, "\xff") {
			t.Fatalf("%q -> %q", s, got)
		}
	}
}
