package server

import (
	"bytes"
	"encoding/json"
	"strconv"
	"testing"
)

// FuzzParse feeds arbitrary bodies to every request parser. It checks that
// none panics, that every accepted body satisfies the contract's limits, and
// that re-encoding what was parsed gives valid JSON that parses back to the
// same values. The seed corpus is in testdata/fuzz/FuzzParse.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		`{"request_id":"r1","user_id":"u1","items":[{"sku":"A","qty":1}]}`,
		`{"request_id":"r1","items":[{"sku":"A","qty":1},{"sku":"B","qty":1000000}],"ttl_ms":60000}`,
		`{"request_id":"r1"}`,
		`{"return_id":"x","request_id":"r1","items":[{"sku":"A","qty":2}]}`,
		`{"total":100,"limit_per_user":2}`,
		`{"request_id":"rs","qty":5}`,
	} {
		f.Add([]byte(s))
	}
	var p parser
	f.Fuzz(func(t *testing.T, body []byte) {
		var o orderBody
		for _, reserve := range []bool{false, true} {
			if err := p.parseOrder(body, reserve, &o); err == nil {
				checkItems(t, o.items[:o.n])
				checkID(t, o.requestID)
				if o.userID != nil {
					checkID(t, o.userID)
				}
				if reserve && (o.ttlMs < TTLMsMin || o.ttlMs > TTLMsMax) {
					t.Fatalf("ttl %d", o.ttlMs)
				}
				// Re-encode and parse again: the same values.
				enc := encodeOrder(&o, reserve)
				if !json.Valid(enc) {
					t.Fatalf("re-encoded body is not JSON: %s", enc)
				}
				var o2 orderBody
				if err := p.parseOrder(enc, reserve, &o2); err != nil {
					t.Fatalf("re-encoded %s: %v", enc, err)
				}
				if !bytes.Equal(encodeOrder(&o2, reserve), enc) {
					t.Fatalf("round trip differs: %s", enc)
				}
			}
		}
		var r refBody
		if err := p.parseRef(body, &r); err == nil {
			checkID(t, r.requestID)
		}
		var ret returnBody
		if err := p.parseReturn(body, &ret); err == nil {
			checkID(t, ret.returnID)
			checkID(t, ret.requestID)
			checkItems(t, ret.items[:ret.n])
		}
		var s skuBody
		if err := p.parseSKU(body, &s); err == nil {
			if s.total < 0 || s.total > TotalMax || s.limit < 0 || s.limit > LimitPerUserMax || (!s.hasLimit && s.limit != 0) {
				t.Fatalf("sku body %+v", s)
			}
		}
		var rs restockBody
		if err := p.parseRestock(body, &rs); err == nil {
			checkID(t, rs.requestID)
			if rs.qty < 1 || rs.qty > QtyMax {
				t.Fatalf("restock qty %d", rs.qty)
			}
		}
	})
}

func checkID(t *testing.T, id []byte) {
	t.Helper()
	if !validID(id) {
		t.Fatalf("accepted id %q", id)
	}
}

func checkItems(t *testing.T, items []itemBody) {
	t.Helper()
	if len(items) < 1 || len(items) > ItemsMax {
		t.Fatalf("%d items", len(items))
	}
	for i, it := range items {
		checkID(t, it.sku)
		if it.qty < 1 || it.qty > QtyMax {
			t.Fatalf("qty %d", it.qty)
		}
		for _, prev := range items[:i] {
			if bytes.Equal(prev.sku, it.sku) {
				t.Fatalf("sku %q twice", it.sku)
			}
		}
	}
}

// encodeOrder writes o back as the canonical JSON body.
func encodeOrder(o *orderBody, reserve bool) []byte {
	b := []byte(`{"request_id":"`)
	b = append(b, o.requestID...)
	b = append(b, '"')
	if o.userID != nil {
		b = append(b, `,"user_id":"`...)
		b = append(b, o.userID...)
		b = append(b, '"')
	}
	b = append(b, `,"items":[`...)
	for i, it := range o.items[:o.n] {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"sku":"`...)
		b = append(b, it.sku...)
		b = append(b, `","qty":`...)
		b = strconv.AppendInt(b, it.qty, 10)
		b = append(b, '}')
	}
	b = append(b, ']')
	if reserve {
		b = append(b, `,"ttl_ms":`...)
		b = strconv.AppendInt(b, o.ttlMs, 10)
	}
	return append(b, '}')
}
