package custos

import "context"

type ctxKey int

const (
	actorKey ctxKey = iota
	requestIDKey
)

// NewContextWithActor returns ctx carrying the acting principal.
func NewContextWithActor(ctx context.Context, p *Principal) context.Context {
	return context.WithValue(ctx, actorKey, p)
}

// ActorFromContext returns the acting principal, or nil.
func ActorFromContext(ctx context.Context) *Principal {
	p, _ := ctx.Value(actorKey).(*Principal)
	return p
}

// NewContextWithRequestID returns ctx carrying a request id for audit.
func NewContextWithRequestID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, requestIDKey, id)
}

// RequestIDFromContext returns the request id, or "".
func RequestIDFromContext(ctx context.Context) string {
	s, _ := ctx.Value(requestIDKey).(string)
	return s
}
