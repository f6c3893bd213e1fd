package filter

import "strconv"

// A number is kept exactly, as the scanner reads it: its sign, its
// significant digits D (no leading or trailing zeros; none for zero) and
// its decimal exponent pos, its value being 0.D × 10^pos. Two numbers are
// equal exactly when these are, and compare without rounding:
// 9007199254740993 and 9007199254740992 differ, although float64 cannot
// tell them apart.

// appendNumber appends the canonical spelling of the number: as
// JavaScript's Number.prototype.toString spells a value with digits D,
// but exact.
func appendNumber[T string | []byte](b []byte, neg bool, digits T, pos int32) []byte {
	k := len(digits)
	if k == 0 {
		return append(b, '0')
	}
	if neg {
		b = append(b, '-')
	}
	n := int(pos)
	switch {
	case k <= n && n <= 21:
		b = append(b, digits...)
		for range n - k {
			b = append(b, '0')
		}
	case 0 < n && n <= 21:
		b = append(b, digits[:n]...)
		b = append(b, '.')
		b = append(b, digits[n:]...)
	case -6 < n && n <= 0:
		b = append(b, '0', '.')
		for range -n {
			b = append(b, '0')
		}
		b = append(b, digits...)
	default:
		b = append(b, digits[0])
		if k > 1 {
			b = append(b, '.')
			b = append(b, digits[1:]...)
		}
		b = append(b, 'e')
		if n-1 >= 0 {
			b = append(b, '+')
		}
		b = strconv.AppendInt(b, int64(n-1), 10)
	}
	return b
}

// cmpNumbers compares two numbers given as sign, digits and exponent: -1
// when a < b, 0 when they are equal, +1 when a > b.
func cmpNumbers(aneg bool, apos int32, adigits string, bneg bool, bpos int32, bdigits string) int {
	as, bs := sign(aneg, adigits), sign(bneg, bdigits)
	switch {
	case as != bs:
		if as < bs {
			return -1
		}
		return 1
	case as == 0:
		return 0
	}
	// The same sign: compare magnitudes, then flip for negatives.
	var m int
	switch {
	case apos < bpos:
		m = -1
	case apos > bpos:
		m = 1
	case adigits < bdigits: // no trailing zeros: a prefix is the smaller
		m = -1
	case adigits > bdigits:
		m = 1
	}
	return m * as
}

func sign(neg bool, digits string) int {
	switch {
	case digits == "":
		return 0
	case neg:
		return -1
	}
	return 1
}
