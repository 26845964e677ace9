package engine_test

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/flashsale/flashsale/engine"
)

// Example embeds the engine in a program: open it on a data directory, put a
// SKU on sale, sell, and see a retry answered from memory.
func Example() {
	dir, _ := os.MkdirTemp("", "flashsale-example")
	defer os.RemoveAll(dir)

	e, err := engine.Open(engine.Options{Dir: dir})
	if err != nil {
		panic(err)
	}
	defer e.Close()
	ctx := context.Background()

	limit := int64(1) // at most one per customer
	if _, _, err := e.SetSKU(ctx, engine.SetSKURequest{SKU: "phone", Total: 2, LimitPerUser: &limit}); err != nil {
		panic(err)
	}
	sale := engine.DeductRequest{RequestID: "order-1", UserID: "alice", Items: []engine.Item{{SKU: "phone", Qty: 1}}}
	res, err := e.Deduct(ctx, sale) // returns once the sale is durable
	fmt.Println("sold:", err == nil, "replayed:", res.Replayed)

	res, _ = e.Deduct(ctx, sale) // the client retried: same outcome, applied once
	fmt.Println("retry replayed:", res.Replayed)

	_, err = e.Deduct(ctx, engine.DeductRequest{RequestID: "order-2", UserID: "alice", Items: []engine.Item{{SKU: "phone", Qty: 1}}})
	fmt.Println("second phone for alice:", errors.Is(err, engine.ErrUserLimitExceeded))

	st, _ := e.Get(ctx, "phone")
	fmt.Printf("total %d available %d sold %d\n", st.Total, st.Available, st.Sold)
	// Output:
	// sold: true replayed: false
	// retry replayed: true
	// second phone for alice: true
	// total 2 available 1 sold 1
}
