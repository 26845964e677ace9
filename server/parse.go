package server

import (
	"bytes"
	"fmt"

	"github.com/valyala/fastjson"
)

// The request parser. It reads a body with fastjson (no reflection) and
// checks it strictly against the contract: JSON types, required fields, ids
// of 1..IDBytesMax bytes of [A-Za-z0-9._:-], integers written without
// fraction or exponent and within their ranges, 1..ItemsMax items with no SKU
// twice. Unknown fields are ignored. Every failure is a *badRequestError
// (400 bad_request). The parsed bodies hold byte slices that point into the
// parser's memory: they are valid until the parser's next parse, and the
// handler copies what it hands to the engine.

// badRequestError is a body that breaks the contract; Error() is the message
// for the caller.
type badRequestError struct{ msg string }

func (e *badRequestError) Error() string { return e.msg }

func badf(format string, args ...any) error {
	return &badRequestError{msg: fmt.Sprintf(format, args...)}
}

// itemBody is one parsed item; sku points into the parser's memory.
type itemBody struct {
	sku []byte
	qty int64
}

// orderBody is a parsed deduct or reserve body.
type orderBody struct {
	requestID []byte
	userID    []byte // nil when absent
	items     [ItemsMax]itemBody
	n         int   // items used
	ttlMs     int64 // reserve only; TTLMsDefault when absent
}

// refBody is a parsed confirm or cancel body.
type refBody struct {
	requestID []byte
}

// returnBody is a parsed return body.
type returnBody struct {
	returnID  []byte
	requestID []byte
	items     [ItemsMax]itemBody
	n         int
}

// skuBody is a parsed PUT /v1/skus/{sku} body.
type skuBody struct {
	total    int64
	limit    int64
	hasLimit bool // false: keep the SKU's current limit
}

// restockBody is a parsed restock body.
type restockBody struct {
	requestID []byte
	qty       int64
}

// parser parses request bodies. Not safe for concurrent use; the server
// keeps one per pooled request state.
type parser struct {
	p   fastjson.Parser
	num []byte // scratch for a number's text
}

// idChars marks the bytes allowed in ids: [A-Za-z0-9._:-].
var idChars = func() (t [256]bool) {
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
	}
	for c := 'A'; c <= 'Z'; c++ {
		t[c] = true
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for _, c := range "._:-" {
		t[c] = true
	}
	return t
}()

// validID reports whether b is 1..IDBytesMax bytes of [A-Za-z0-9._:-].
func validID(b []byte) bool {
	if len(b) == 0 || len(b) > IDBytesMax {
		return false
	}
	for _, c := range b {
		if !idChars[c] {
			return false
		}
	}
	return true
}

// object parses body and returns its top-level object. The whole body must
// be valid JSON (fastjson alone leaves values it is never asked for
// unchecked), and no object key may appear twice at the top level: parsers
// disagree on which one wins, so a gateway could read another order than
// the engine. The parser runs before the validator: it refuses nesting
// deeper than fastjson.MaxDepth at once, while the validator recurses
// without a bound and wraps its error once per level (a body of 64 KiB of
// '[' cost it minutes of CPU and an error of megabytes).
func (p *parser) object(body []byte) (*fastjson.Value, error) {
	v, err := p.p.ParseBytes(body)
	if err != nil {
		return nil, badf("body is not valid JSON: %v", err)
	}
	if err := fastjson.ValidateBytes(body); err != nil {
		return nil, badf("body is not valid JSON: %v", err)
	}
	if v.Type() != fastjson.TypeObject {
		return nil, badf("body must be a JSON object, not %s", v.Type())
	}
	if err := uniqueKeys(v, -1); err != nil {
		return nil, err
	}
	return v, nil
}

// uniqueKeys refuses an object in which a key appears twice: the body's
// (item -1) or items[item].
func uniqueKeys(o *fastjson.Value, item int) error {
	obj, _ := o.Object()
	var buf [16][]byte // bodies have a handful of keys: no allocation
	keys := buf[:0]
	// Past len(buf) keys, a set: comparing each key with every other one
	// costs the square of their number (50 ms for the 10,000 keys that fit
	// in 64 KiB).
	var seen map[string]struct{}
	var dup []byte
	obj.Visit(func(k []byte, _ *fastjson.Value) {
		if dup != nil {
			return
		}
		if seen == nil && len(keys) == len(buf) {
			seen = make(map[string]struct{}, obj.Len())
			for _, s := range keys {
				seen[string(s)] = struct{}{}
			}
		}
		if seen != nil {
			if _, ok := seen[string(k)]; ok {
				dup = k
				return
			}
			seen[string(k)] = struct{}{}
			return
		}
		for _, s := range keys {
			if bytes.Equal(s, k) {
				dup = k
				return
			}
		}
		keys = append(keys, k)
	})
	switch {
	case dup == nil:
		return nil
	case item < 0:
		return badf("key %q appears twice", dup)
	default:
		return badf("items[%d]: key %q appears twice", item, dup)
	}
}

// id reads the id field key of o. Absent or null: an error when required,
// else (nil, nil).
func id(o *fastjson.Value, key string, required bool) ([]byte, error) {
	v := o.Get(key)
	if v == nil || v.Type() == fastjson.TypeNull {
		if required {
			return nil, badf("%s: required", key)
		}
		return nil, nil
	}
	if v.Type() != fastjson.TypeString {
		return nil, badf("%s: must be a string, not %s", key, v.Type())
	}
	b, _ := v.StringBytes()
	if !validID(b) {
		return nil, badf("%s: must be 1..%d bytes of [A-Za-z0-9._:-]", key, IDBytesMax)
	}
	return b, nil
}

// integer reads the integer field key of o, which must lie in lo..hi. Absent
// or null: an error when required, else present is false.
func (p *parser) integer(o *fastjson.Value, key string, lo, hi int64, required bool) (n int64, present bool, err error) {
	v := o.Get(key)
	if v == nil || v.Type() == fastjson.TypeNull {
		if required {
			return 0, false, badf("%s: required", key)
		}
		return 0, false, nil
	}
	n, err = p.intValue(v, key, lo, hi)
	return n, err == nil, err
}

// intDigitsMax bounds the digits read from an integer; every limit of the
// contract has fewer, so a longer number is out of range.
const intDigitsMax = 18

// intValue converts v, which must be a JSON integer written as -?[0-9]+
// without leading zeros, fraction or exponent, and lie in lo..hi.
func (p *parser) intValue(v *fastjson.Value, key string, lo, hi int64) (int64, error) {
	if v.Type() != fastjson.TypeNumber {
		return 0, badf("%s: must be an integer, not %s", key, v.Type())
	}
	p.num = v.MarshalTo(p.num[:0])
	s := p.num
	neg := false
	if len(s) > 0 && s[0] == '-' {
		neg, s = true, s[1:]
	}
	if len(s) == 0 || (len(s) > 1 && s[0] == '0') {
		return 0, badf("%s: must be a JSON integer without fraction or exponent", key)
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0, badf("%s: must be a JSON integer without fraction or exponent", key)
		}
	}
	if len(s) > intDigitsMax {
		return 0, badf("%s: out of range %d..%d", key, lo, hi)
	}
	var n int64
	for _, c := range s {
		n = n*10 + int64(c-'0')
	}
	if neg {
		n = -n
	}
	if n < lo || n > hi {
		return 0, badf("%s: out of range %d..%d", key, lo, hi)
	}
	return n, nil
}

// items reads the items array of o into dst and returns how many it holds.
func (p *parser) items(o *fastjson.Value, dst *[ItemsMax]itemBody) (int, error) {
	v := o.Get("items")
	if v == nil || v.Type() == fastjson.TypeNull {
		return 0, badf("items: required")
	}
	if v.Type() != fastjson.TypeArray {
		return 0, badf("items: must be an array, not %s", v.Type())
	}
	arr, _ := v.Array()
	if len(arr) == 0 || len(arr) > ItemsMax {
		return 0, badf("items: %d items, want 1..%d", len(arr), ItemsMax)
	}
	for i, it := range arr {
		if it.Type() != fastjson.TypeObject {
			return 0, badf("items[%d]: must be an object, not %s", i, it.Type())
		}
		if err := uniqueKeys(it, i); err != nil {
			return 0, err
		}
		sku, err := id(it, "sku", true)
		if err != nil {
			return 0, badf("items[%d].%v", i, err)
		}
		qty, _, err := p.integer(it, "qty", 1, QtyMax, true)
		if err != nil {
			return 0, badf("items[%d].%v", i, err)
		}
		for j := range i {
			if bytes.Equal(dst[j].sku, sku) {
				return 0, badf("items[%d].sku: %s appears twice", i, sku)
			}
		}
		dst[i] = itemBody{sku: sku, qty: qty}
	}
	return len(arr), nil
}

// parseOrder parses a deduct (reserve false) or reserve body into b.
func (p *parser) parseOrder(body []byte, reserve bool, b *orderBody) error {
	o, err := p.object(body)
	if err != nil {
		return err
	}
	if b.requestID, err = id(o, "request_id", true); err != nil {
		return err
	}
	if b.userID, err = id(o, "user_id", false); err != nil {
		return err
	}
	if b.n, err = p.items(o, &b.items); err != nil {
		return err
	}
	b.ttlMs = 0
	if reserve {
		ttl, ok, err := p.integer(o, "ttl_ms", TTLMsMin, TTLMsMax, false)
		if err != nil {
			return err
		}
		if !ok {
			ttl = TTLMsDefault
		}
		b.ttlMs = ttl
	}
	return nil
}

// parseRef parses a confirm or cancel body into b.
func (p *parser) parseRef(body []byte, b *refBody) error {
	o, err := p.object(body)
	if err != nil {
		return err
	}
	b.requestID, err = id(o, "request_id", true)
	return err
}

// parseReturn parses a return body into b.
func (p *parser) parseReturn(body []byte, b *returnBody) error {
	o, err := p.object(body)
	if err != nil {
		return err
	}
	if b.returnID, err = id(o, "return_id", true); err != nil {
		return err
	}
	if b.requestID, err = id(o, "request_id", true); err != nil {
		return err
	}
	b.n, err = p.items(o, &b.items)
	return err
}

// parseSKU parses a PUT /v1/skus/{sku} body into b.
func (p *parser) parseSKU(body []byte, b *skuBody) error {
	o, err := p.object(body)
	if err != nil {
		return err
	}
	if b.total, _, err = p.integer(o, "total", 0, TotalMax, true); err != nil {
		return err
	}
	b.limit, b.hasLimit, err = p.integer(o, "limit_per_user", 0, LimitPerUserMax, false)
	return err
}

// parseRestock parses a restock body into b.
func (p *parser) parseRestock(body []byte, b *restockBody) error {
	o, err := p.object(body)
	if err != nil {
		return err
	}
	if b.requestID, err = id(o, "request_id", true); err != nil {
		return err
	}
	b.qty, _, err = p.integer(o, "qty", 1, QtyMax, true)
	return err
}
