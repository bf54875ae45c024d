package records

// MinorUnits returns the number of minor-unit digits of an ISO 4217
// currency code (JPY 0, PLN 2, KWD 3, CLF 4). Codes not listed here and
// unknown codes get 2: every active ISO 4217 currency that is not an
// exception below has exactly two. Safe for concurrent use; no allocation.
func MinorUnits(currency string) int {
	switch currency {
	// ISO 4217 currencies with no minor unit.
	case "BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG",
		"RWF", "UGX", "UYI", "VND", "VUV", "XAF", "XOF", "XPF":
		return 0
	// Three decimals.
	case "BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND":
		return 3
	// Four decimals (units of account).
	case "CLF", "UYW":
		return 4
	}
	return 2
}

func pow10(n int) float64 {
	switch n {
	case 0:
		return 1
	case 3:
		return 1000
	case 4:
		return 10000
	}
	return 100
}

// DerivePrice sets o.Price to o.PriceMinor in major units of o.Currency:
// PriceMinor / 10^MinorUnits(Currency). Decoders call it; callers that build
// an Offer by hand call it after setting PriceMinor and Currency.
func DerivePrice(o *Offer) {
	o.Price = float64(o.PriceMinor) / pow10(MinorUnits(o.Currency))
}
