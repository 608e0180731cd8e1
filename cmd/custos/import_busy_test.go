package main

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"custos"
	"custos/core"
	custoshttp "custos/http"
)

// TestImportBatchBusy checks that `custos import` sends a batch again when
// the server refused it as busy (503, code unavailable: it waited for the
// store's writer until its request's time was up and wrote nothing), and
// gives up after busyRetries. The server here answers from a script: a
// real node refuses a batch as busy only after its 55 s request deadline
// (TestQueryTimeout and sqlutil's TestHand cover that side).
func TestImportBatchBusy(t *testing.T) {
	defer func(w time.Duration) { busyWait = w }(busyWait)
	busyWait = time.Millisecond
	for _, tc := range []struct {
		name   string
		busy   int64 // refusals before the batch is taken
		calls  int64
		stored bool
	}{
		{"taken on the third try", 2, 3, true},
		{"always busy", 1 << 30, busyRetries + 1, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var calls atomic.Int64
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if calls.Add(1) <= tc.busy {
					custoshttp.Error(w, r, slog.New(slog.DiscardHandler), &custos.Error{Code: custos.EUNAVAILABLE, Message: "The store is busy."})
					return
				}
				_ = json.NewEncoder(w).Encode(map[string]any{"results": []*custos.ImportResult{{Line: 1, Status: custos.ImportStored}}})
			}))
			defer srv.Close()
			client := custoshttp.NewClient(srv.URL, "key")
			res, err := importBatch(t.Context(), client, []string{"account"}, "job", []core.ImportInput{{Line: 1}})
			if got := calls.Load(); got != tc.calls {
				t.Errorf("%d requests, want %d", got, tc.calls)
			}
			if tc.stored && (err != nil || len(res) != 1 || res[0].Status != custos.ImportStored) {
				t.Errorf("importBatch: %v, %v; want the stored result", res, err)
			}
			if !tc.stored && custos.ErrorCode(err) != custos.EUNAVAILABLE {
				t.Errorf("importBatch: %v, want the busy refusal after the last try", err)
			}
		})
	}
}
