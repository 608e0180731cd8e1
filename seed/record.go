package seed

import (
	"fmt"
	"slices"
	"time"

	"custos"
)

// Record types Records makes; all are in the default catalog.
const (
	TypeOrder     = "order"
	TypePayment   = "payment"
	TypeLogistics = "logistics"
	TypeBrowsing  = "browsing"
	TypeSearch    = "search"
)

// Records returns n records of the last generated subject (any customer if
// Subject was never called), oldest first, all within the year before the
// reference date: shopping journeys (searches, product views, an order, its
// payment and parcel-tracking events, which share the order number) and
// stray browsing and searches. Money is a decimal string in CNY ("128.00")
// with "currency": "CNY". Data holds no personal data, only shop data.
func (g *Generator) Records(n int) []custos.NewRecord {
	a := g.last
	if a == nil {
		a = &areas[g.r.IntN(len(areas))]
	}
	var out []custos.NewRecord
	for len(out) < n {
		if g.r.IntN(10) < 6 {
			out = g.journey(out, a)
		} else {
			out = g.stray(out)
		}
	}
	slices.SortStableFunc(out, func(x, y custos.NewRecord) int { return x.OccurredAt.Compare(y.OccurredAt) })
	return out[:n]
}

func (g *Generator) record(typ string, at time.Time, data map[string]any) custos.NewRecord {
	return custos.NewRecord{Type: typ, OccurredAt: at, Data: data, Provenance: Provenance}
}

// cst is China Standard Time, for plausible shopping hours.
var cst = time.FixedZone("CST", 8*60*60)

// shopHours weights the hours of a day (China time) people shop at.
var shopHours = [24]int{2, 1, 1, 0, 0, 0, 1, 2, 4, 5, 6, 6, 8, 7, 6, 6, 6, 7, 8, 10, 12, 12, 10, 5}

// start returns a random time of day people shop at, on a day (China time)
// between 364 and marginDays+1 days before the reference date, in UTC to
// the second: always within the year before the reference date.
func (g *Generator) start(marginDays int) time.Time {
	day := g.ref.In(cst).AddDate(0, 0, -(marginDays + 1 + g.r.IntN(364-marginDays)))
	total := 0
	for _, w := range shopHours {
		total += w
	}
	h, x := 0, g.r.IntN(total)
	for x >= shopHours[h] {
		x -= shopHours[h]
		h++
	}
	t := time.Date(day.Year(), day.Month(), day.Day(), h, g.r.IntN(60), g.r.IntN(60), 0, cst)
	return t.UTC()
}

func (g *Generator) minutes(lo, hi int) time.Duration {
	return time.Duration(lo+g.r.IntN(hi-lo+1))*time.Minute + time.Duration(g.r.IntN(60))*time.Second
}

var channels = []string{"app", "app", "app", "mini_program", "mini_program", "web", "pos"}

// stray is a lone product view or search.
func (g *Generator) stray(out []custos.NewRecord) []custos.NewRecord {
	at := g.start(0)
	ch := channels[g.r.IntN(len(channels)-1)] // no searches at the till
	if g.r.IntN(2) == 0 {
		return append(out, g.search(at, ch, searchTerms[g.r.IntN(len(searchTerms))]))
	}
	return append(out, g.browse(at, ch, products[g.r.IntN(len(products))], "home"))
}

func (g *Generator) search(at time.Time, ch, query string) custos.NewRecord {
	return g.record(TypeSearch, at, map[string]any{
		"query":   query,
		"results": 1 + g.r.IntN(500),
		"channel": ch,
	})
}

func (g *Generator) browse(at time.Time, ch string, p product, referrer string) custos.NewRecord {
	return g.record(TypeBrowsing, at, map[string]any{
		"page":       "product",
		"sku":        p.sku,
		"product":    p.name,
		"category":   p.category,
		"duration_s": 5 + g.r.IntN(300),
		"referrer":   referrer,
		"channel":    ch,
	})
}

// journey is a purchase: perhaps a search, product views, the order, its
// payment and, unless bought at the till, parcel tracking to the
// customer's city.
func (g *Generator) journey(out []custos.NewRecord, a *area) []custos.NewRecord {
	at := g.start(8) // leaves room for delivery before the reference date
	ch := channels[g.r.IntN(len(channels))]

	items := make([]product, 1+g.r.IntN(3))
	for i := range items {
		items[i] = products[g.r.IntN(len(products))]
	}
	if ch != "pos" {
		referrer := "recommendation"
		if g.r.IntN(2) == 0 {
			out = append(out, g.search(at, ch, items[0].name))
			referrer = "search"
			at = at.Add(g.minutes(0, 3))
		}
		for _, p := range items {
			out = append(out, g.browse(at, ch, p, referrer))
			at = at.Add(g.minutes(1, 10))
		}
	}

	orderNo := g.unique("order", func() string { return "SO" + at.Format("20060102") + g.digits(10) })
	var lines []any
	var subtotal int64
	for _, p := range items {
		qty := 1 + g.r.IntN(3)
		if g.r.IntN(3) > 0 {
			qty = 1
		}
		subtotal += p.price * int64(qty)
		lines = append(lines, map[string]any{
			"sku": p.sku, "name": p.name, "category": p.category,
			"qty": qty, "unit_price": yuan(p.price),
		})
	}
	var shipping, discount int64
	if ch != "pos" && subtotal < 9900 {
		shipping = 600 + int64(g.r.IntN(3))*200
	}
	if subtotal >= 20000 && g.r.IntN(3) == 0 {
		discount = subtotal / 20000 * 2000 // 满200减20
	}
	total := subtotal + shipping - discount
	out = append(out, g.record(TypeOrder, at, map[string]any{
		"order_no":     orderNo,
		"channel":      ch,
		"items":        lines,
		"subtotal":     yuan(subtotal),
		"shipping_fee": yuan(shipping),
		"discount":     yuan(discount),
		"amount":       yuan(total),
		"currency":     "CNY",
	}))

	at = at.Add(g.minutes(0, 5))
	methods := []string{"alipay", "wechat_pay", "wechat_pay", "unionpay", "credit_card"}
	out = append(out, g.record(TypePayment, at, map[string]any{
		"payment_no": g.unique("payment", func() string { return "PAY" + at.Format("20060102") + g.digits(12) }),
		"order_no":   orderNo,
		"method":     methods[g.r.IntN(len(methods))],
		"amount":     yuan(total),
		"currency":   "CNY",
		"status":     "succeeded",
	}))
	if ch == "pos" {
		return out
	}

	c := carriers[g.r.IntN(len(carriers))]
	tracking := g.unique("tracking", func() string { return c.prefix + g.digits(c.digits) })
	at = at.Add(g.minutes(60, 24*60))
	steps := len(logisticsSteps)
	if g.r.IntN(10) == 0 {
		steps = 1 + g.r.IntN(steps-1) // still on its way
	}
	for i, s := range logisticsSteps[:steps] {
		loc := "转运中心"
		if i >= 2 {
			loc = a.city + a.district
		}
		out = append(out, g.record(TypeLogistics, at, map[string]any{
			"order_no":     orderNo,
			"carrier":      c.name,
			"carrier_code": c.code,
			"tracking_no":  tracking,
			"status":       s.status,
			"description":  s.description,
			"location":     loc,
		}))
		at = at.Add(g.minutes(2*60, 30*60))
	}
	return out
}

// yuan formats fen as a CNY decimal string.
func yuan(fen int64) string {
	return fmt.Sprintf("%d.%02d", fen/100, fen%100)
}
