package offerrules

import (
	"strconv"
	"strings"

	"github.com/feedmill/feedmill/internal/records"
)

// InStock reports whether o can be bought now: its status is ACTIVE and it
// has stock.
func InStock(o *records.Offer) bool {
	return o.Status == "ACTIVE" && o.Stock > 0
}

// AppendAmount appends priceMinor in major units of currency with exactly
// the currency's minor-unit digits (records.MinorUnits): 12999 PLN →
// 129.99, 5 PLN → 0.05, 12999 JPY → 12999, 5 KWD → 0.005, -250 PLN →
// -2.50.
func AppendAmount(dst []byte, priceMinor int, currency string) []byte {
	minor := priceMinor
	if minor < 0 {
		dst = append(dst, '-')
		minor = -minor
	}
	digits := records.MinorUnits(currency)
	if digits <= 0 {
		return strconv.AppendInt(dst, int64(minor), 10)
	}
	scale := 1
	for range digits {
		scale *= 10
	}
	dst = strconv.AppendInt(dst, int64(minor/scale), 10)
	dst = append(dst, '.')
	frac := minor % scale
	for s := scale / 10; s > 1 && frac < s; s /= 10 {
		dst = append(dst, '0')
	}
	return strconv.AppendInt(dst, int64(frac), 10)
}

// AppendPrice appends the amount (AppendAmount), a space and the currency
// code: 12999 PLN → "129.99 PLN".
func AppendPrice(dst []byte, priceMinor int, currency string) []byte {
	dst = AppendAmount(dst, priceMinor, currency)
	dst = append(dst, ' ')
	return append(dst, currency...)
}

// AppendProductType appends the category path in Google's product type
// form: each "/"-separated segment trimmed of white space, blank segments
// dropped, joined by " > " (Electronics/ Phones //Smartphones →
// Electronics > Phones > Smartphones). ok is false, and dst unchanged,
// when the path has no non-blank segment: the offer has no product type.
func AppendProductType(dst []byte, category string) (_ []byte, ok bool) {
	start := len(dst)
	rest := category
	for rest != "" {
		var seg string
		seg, rest, _ = strings.Cut(rest, "/")
		seg = strings.TrimSpace(seg)
		if seg == "" {
			continue
		}
		if len(dst) > start {
			dst = append(dst, " > "...)
		}
		dst = append(dst, seg...)
	}
	return dst, len(dst) > start
}
