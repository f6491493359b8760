package streamio

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

func TestCopyExact(t *testing.T) {
	boom := errors.New("boom")
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name    string
		ctx     context.Context
		src     io.Reader
		size    int64
		wantErr error  // matched with errors.Is when not nil
		wantMsg string // substring of the error when not empty
	}{
		{name: "exact", src: strings.NewReader("hello"), size: 5},
		{name: "empty", src: strings.NewReader(""), size: 0},
		{name: "one byte at a time", src: iotest.OneByteReader(strings.NewReader("hello")), size: 5},
		{name: "data with EOF", src: iotest.DataErrReader(strings.NewReader("hello")), size: 5},
		{name: "short", src: strings.NewReader("hell"), size: 5, wantErr: io.ErrUnexpectedEOF, wantMsg: "4 of 5"},
		{name: "long", src: strings.NewReader("hello!"), size: 5, wantMsg: "more than the declared 5"},
		{name: "non-empty for zero", src: strings.NewReader("x"), size: 0, wantMsg: "more than"},
		{name: "reader fails", src: io.MultiReader(strings.NewReader("he"), iotest.ErrReader(boom)), size: 5, wantErr: boom},
		{name: "reader fails at end", src: io.MultiReader(strings.NewReader("hello"), iotest.ErrReader(boom)), size: 5, wantErr: boom},
		{name: "cancelled", ctx: cancelled, src: strings.NewReader("hello"), size: 5, wantErr: context.Canceled},
		{name: "negative size", src: strings.NewReader(""), size: -1, wantMsg: "negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := tt.ctx
			if ctx == nil {
				ctx = context.Background()
			}
			var dst bytes.Buffer
			err := CopyExact(ctx, &dst, tt.src, tt.size)
			if tt.wantErr == nil && tt.wantMsg == "" {
				if err != nil {
					t.Fatalf("CopyExact = %v, want nil", err)
				}
				if int64(dst.Len()) != tt.size {
					t.Fatalf("copied %d bytes, want %d", dst.Len(), tt.size)
				}
				return
			}
			if err == nil {
				t.Fatal("CopyExact succeeded, want error")
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("CopyExact = %v, want it to wrap %v", err, tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("CopyExact = %v, want it to contain %q", err, tt.wantMsg)
			}
		})
	}
}
