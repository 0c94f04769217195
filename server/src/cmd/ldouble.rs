//! INCRBYFLOAT's arithmetic, as Redis does it on x86-64 Linux: C `long double`, the x87
//! 80-bit extended format (a 64-bit significand, exponents to about 1e±4932). Redis reads
//! both numbers with glibc's `strtold` (correctly rounded; decimal, hex floats, `inf`), adds
//! them with the FPU (correctly rounded to 64 bits, round half to even, gradual underflow)
//! and prints the sum with `%.17Lf` (the exact binary value rounded to 17 decimals, half to
//! even) with trailing zeros cut. Here the same three steps are done exactly, in integers:
//! every value is `significand × 2^exponent`, and a small big-integer type holds the exact
//! intermediate results before the one rounding each step does. No `f64` is involved, so
//! `1.1 + 0.1` and `0.1` summed ten times read back as Redis's texts do.

use std::cmp::Ordering;

/// Redis's `MAX_LONG_DOUBLE_CHARS`: `string2ld` refuses texts this long or longer.
const MAX_CHARS: usize = 5 * 1024;
/// The exponent of the smallest subnormal (and of the smallest normal, whose significand
/// has its top bit set): 2^-16445.
const MIN_EXP: i64 = -16445;
/// The exponent of the largest finite value, (2^64 - 1) × 2^16320.
const MAX_EXP: i64 = 16320;

/// A value of the x87 extended format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ld {
    /// `(-1)^neg × sig × 2^exp`; `sig`'s top bit is set unless `exp` is `MIN_EXP`.
    Finite {
        neg: bool,
        sig: u64,
        exp: i64,
    },
    Inf {
        neg: bool,
    },
}

impl Ld {
    pub const ZERO: Ld = Ld::zero(false);

    const fn zero(neg: bool) -> Ld {
        Ld::Finite {
            neg,
            sig: 0,
            exp: MIN_EXP,
        }
    }
}

/// Redis's `string2ld`: the whole text must be one number as `strtold` reads it, with no
/// leading space, and neither NaN nor out of range (a finite text that overflows, or a
/// non-zero one that rounds to zero). `inf` and `infinity` are numbers.
#[must_use]
pub fn parse(b: &[u8]) -> Option<Ld> {
    if b.is_empty() || b.len() >= MAX_CHARS {
        return None;
    }
    let (neg, rest) = match b[0] {
        b'-' => (true, &b[1..]),
        b'+' => (false, &b[1..]),
        _ => (false, b),
    };
    if rest.eq_ignore_ascii_case(b"inf") || rest.eq_ignore_ascii_case(b"infinity") {
        return Some(Ld::Inf { neg });
    }
    let (digits, radix, rest) = match rest {
        [b'0', b'x' | b'X', r @ ..] => (hex_digit as fn(u8) -> Option<u32>, 16, r),
        r => (dec_digit as fn(u8) -> Option<u32>, 10, r),
    };
    // Mantissa digits, with the count of those after the point.
    let mut n = Big::default();
    let (mut seen, mut frac, mut point, mut i) = (false, 0i64, false, 0);
    // Digits from the first non-zero one on (n < radix^sig_digits).
    let mut sig_digits = 0i64;
    while i < rest.len() {
        match (rest[i], digits(rest[i])) {
            (_, Some(d)) => {
                n.mul_add(radix, d);
                sig_digits += i64::from(!n.is_zero());
                seen = true;
                frac += i64::from(point);
            }
            (b'.', None) if !point => point = true,
            _ => break,
        }
        i += 1;
    }
    if !seen {
        return None;
    }
    // The exponent: decimal digits after e (a power of 10) or p (a power of 2).
    let mut exp = 0i64;
    if i < rest.len() {
        let marker: &[u8] = if radix == 16 { b"pP" } else { b"eE" };
        if !marker.contains(&rest[i]) {
            return None;
        }
        let (eneg, e) = match &rest[i + 1..] {
            [b'-', e @ ..] => (true, e),
            [b'+', e @ ..] => (false, e),
            e => (false, e),
        };
        if e.is_empty() || !e.iter().all(u8::is_ascii_digit) {
            return None;
        }
        // Far past any exponent that keeps a non-zero value in range.
        exp = e
            .iter()
            .fold(0i64, |a, &d| (a * 10 + i64::from(d - b'0')).min(1 << 40));
        if eneg {
            exp = -exp;
        }
    }
    if n.is_zero() {
        return Some(Ld::zero(neg));
    }
    let v = if radix == 16 {
        round(neg, &n, exp - 4 * frac, false)
    } else {
        from_decimal(neg, &n, sig_digits, exp - frac)?
    };
    match v {
        Ld::Finite { sig: 0, .. } | Ld::Inf { .. } => None,
        v => Some(v),
    }
}

fn dec_digit(c: u8) -> Option<u32> {
    c.is_ascii_digit().then(|| u32::from(c - b'0'))
}

fn hex_digit(c: u8) -> Option<u32> {
    char::from(c).to_digit(16)
}

/// `n × 10^e` rounded (`n` is not zero and has `digits` decimal digits); None when it is
/// certainly out of range.
fn from_decimal(neg: bool, n: &Big, digits: i64, e: i64) -> Option<Ld> {
    // The value lies in [10^(digits-1+e), 10^(digits+e)). The largest finite value is
    // about 1.19e4932 and half the smallest subnormal about 1.8e-4951.
    if digits - 1 + e > 4933 {
        return None;
    }
    if digits + e < -4952 {
        return None;
    }
    if e >= 0 {
        let mut m = n.clone();
        m.mul_pow10(e.unsigned_abs());
        return Some(round(neg, &m, 0, false));
    }
    // n / 10^-e = q × 2^t (+ a remainder): a divisor shifted so the quotient q has 66 or
    // 67 bits, enough to round once with a sticky bit.
    let mut p = Big::from_u128(1);
    p.mul_pow10(e.unsigned_abs());
    let t = bits_i64(n) - bits_i64(&p) - 66;
    let (mut a, d) = if t < 0 {
        (n.shl(usize::try_from(-t).ok()?), p)
    } else {
        (n.clone(), p.shl(usize::try_from(t).ok()?))
    };
    let mut q = 0u128;
    for i in (0..=a.bits().saturating_sub(d.bits())).rev() {
        let di = d.shl(i);
        if a.cmp(&di) != Ordering::Less {
            a.sub(&di);
            q |= 1 << i;
        }
    }
    Some(round(neg, &Big::from_u128(q), t, !a.is_zero()))
}

fn bits_i64(n: &Big) -> i64 {
    i64::try_from(n.bits()).unwrap_or(i64::MAX)
}

/// `(n + δ) × 2^e`, 0 ≤ δ < 1 and δ > 0 iff `sticky`, rounded to the nearest value of the
/// format (half to even), to infinity past the largest.
fn round(neg: bool, n: &Big, e: i64, sticky: bool) -> Ld {
    let bits = bits_i64(n);
    if bits == 0 {
        return Ld::zero(neg);
    }
    let mut shift = bits - 64;
    let mut exp = e + shift;
    if exp < MIN_EXP {
        shift += MIN_EXP - exp;
        exp = MIN_EXP;
    }
    let (mut sig, half, rest) = if shift <= 0 {
        // n fits in 64 bits and is exact: a sticky δ would be lost (callers give n at
        // least 66 bits when they have one).
        debug_assert!(!sticky);
        (n.window(0) << shift.unsigned_abs(), false, false)
    } else {
        let s = usize::try_from(shift).unwrap_or(usize::MAX);
        (n.window(s), n.bit(s - 1), sticky || n.any_below(s - 1))
    };
    if half && (rest || sig & 1 == 1) {
        sig = sig.wrapping_add(1);
        if sig == 0 {
            sig = 1 << 63;
            exp += 1;
        }
    }
    if exp > MAX_EXP {
        return Ld::Inf { neg };
    }
    Ld::Finite { neg, sig, exp }
}

/// `a + b` as the FPU adds them; None for an infinite or NaN sum (Redis's "increment would
/// produce NaN or Infinity").
#[must_use]
pub fn add(a: Ld, b: Ld) -> Option<Ld> {
    let (
        Ld::Finite {
            neg: na,
            sig: sa,
            exp: ea,
        },
        Ld::Finite {
            neg: nb,
            sig: sb,
            exp: eb,
        },
    ) = (a, b)
    else {
        return None;
    };
    let e = ea.min(eb);
    let shift = |sig: u64, exp: i64| {
        Big::from_u128(u128::from(sig)).shl(usize::try_from(exp - e).unwrap_or(0))
    };
    let (x, y) = (shift(sa, ea), shift(sb, eb));
    let sum = if na == nb {
        round(na, &x.add(&y), e, false)
    } else {
        match x.cmp(&y) {
            // x + (-x) is +0 when rounding to nearest; its text is "0" either way.
            Ordering::Equal => Ld::ZERO,
            Ordering::Greater => round(na, &x.minus(&y), e, false),
            Ordering::Less => round(nb, &y.minus(&x), e, false),
        }
    };
    matches!(sum, Ld::Finite { .. }).then_some(sum)
}

/// Redis's `ld2string(LD_STR_HUMAN)` of a finite value: `%.17Lf` with the trailing zeros
/// (and then a trailing point) cut, and "-0" printed as "0".
#[must_use]
pub fn format(v: Ld) -> String {
    let Ld::Finite { neg, sig, exp } = v else {
        return String::new();
    };
    let mut out = String::new();
    if neg {
        out.push('-');
    }
    if exp >= 0 {
        let n = Big::from_u128(u128::from(sig)).shl(usize::try_from(exp).unwrap_or(0));
        out.push_str(&n.to_decimal());
    } else {
        const SCALE: u128 = 100_000_000_000_000_000; // 10^17
        let k = exp.unsigned_abs();
        let (int, frac) = if k < 64 {
            (sig >> k, sig & ((1u64 << k) - 1))
        } else {
            (0, sig)
        };
        // frac × 10^17 < 2^121: the 17 decimals are it / 2^k, rounded half to even.
        let p = u128::from(frac) * SCALE;
        let mut dec = 0u128;
        if k < 128 {
            dec = p >> k;
            let below = p & ((1u128 << k) - 1);
            let half = 1u128 << (k - 1);
            if below > half || (below == half && dec & 1 == 1) {
                dec += 1;
            }
        }
        let mut int = u128::from(int);
        if dec == SCALE {
            int += 1;
            dec = 0;
        }
        out.push_str(&int.to_string());
        let d = format!("{dec:017}");
        let d = d.trim_end_matches('0');
        if !d.is_empty() {
            out.push('.');
            out.push_str(d);
        }
    }
    if out == "-0" {
        out.remove(0);
    }
    out
}

/// A non-negative integer as little-endian 32-bit limbs, without high zero limbs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Big(Vec<u32>);

impl Big {
    fn from_u128(mut v: u128) -> Big {
        let mut b = Big::default();
        while v != 0 {
            b.0.push(v as u32);
            v >>= 32;
        }
        b
    }

    fn is_zero(&self) -> bool {
        self.0.is_empty()
    }

    fn trim(&mut self) {
        while self.0.last() == Some(&0) {
            self.0.pop();
        }
    }

    /// self = self × m + a.
    fn mul_add(&mut self, m: u32, a: u32) {
        let mut carry = u64::from(a);
        for l in &mut self.0 {
            let t = u64::from(*l) * u64::from(m) + carry;
            *l = t as u32;
            carry = t >> 32;
        }
        if carry != 0 {
            self.0.push(carry as u32);
        }
    }

    fn mul_pow10(&mut self, mut e: u64) {
        while e > 0 {
            let step = e.min(9);
            self.mul_add(10u32.pow(step as u32), 0);
            e -= step;
        }
    }

    fn bits(&self) -> usize {
        self.0
            .last()
            .map_or(0, |&top| self.0.len() * 32 - top.leading_zeros() as usize)
    }

    fn bit(&self, i: usize) -> bool {
        self.0.get(i / 32).is_some_and(|&l| l >> (i % 32) & 1 == 1)
    }

    /// Whether any bit below `i` is set.
    fn any_below(&self, i: usize) -> bool {
        let (whole, part) = (i / 32, i % 32);
        self.0.iter().take(whole).any(|&l| l != 0)
            || (part > 0
                && self
                    .0
                    .get(whole)
                    .is_some_and(|&l| l & ((1 << part) - 1) != 0))
    }

    /// Bits `s .. s + 64` as a number.
    fn window(&self, s: usize) -> u64 {
        (0..64).fold(0u64, |acc, j| acc | (u64::from(self.bit(s + j)) << j))
    }

    fn shl(&self, n: usize) -> Big {
        if self.is_zero() {
            return Big::default();
        }
        let (whole, part) = (n / 32, n % 32);
        let mut out = vec![0u32; whole];
        let mut carry = 0u32;
        for &l in &self.0 {
            if part == 0 {
                out.push(l);
            } else {
                out.push(l << part | carry);
                carry = l >> (32 - part);
            }
        }
        out.push(carry);
        let mut b = Big(out);
        b.trim();
        b
    }

    fn cmp(&self, o: &Big) -> Ordering {
        self.0
            .len()
            .cmp(&o.0.len())
            .then_with(|| self.0.iter().rev().cmp(o.0.iter().rev()))
    }

    fn add(&self, o: &Big) -> Big {
        let (long, short) = if self.0.len() >= o.0.len() {
            (self, o)
        } else {
            (o, self)
        };
        let mut out = Vec::with_capacity(long.0.len() + 1);
        let mut carry = 0u64;
        for (i, &l) in long.0.iter().enumerate() {
            let t = u64::from(l) + u64::from(short.0.get(i).copied().unwrap_or(0)) + carry;
            out.push(t as u32);
            carry = t >> 32;
        }
        if carry != 0 {
            out.push(carry as u32);
        }
        Big(out)
    }

    /// self -= o, for o ≤ self.
    fn sub(&mut self, o: &Big) {
        let mut borrow = 0i64;
        for (i, l) in self.0.iter_mut().enumerate() {
            let t = i64::from(*l) - i64::from(o.0.get(i).copied().unwrap_or(0)) - borrow;
            *l = t.rem_euclid(1 << 32) as u32;
            borrow = i64::from(t < 0);
        }
        debug_assert_eq!(borrow, 0);
        self.trim();
    }

    fn minus(&self, o: &Big) -> Big {
        let mut d = self.clone();
        d.sub(o);
        d
    }

    fn to_decimal(&self) -> String {
        if self.is_zero() {
            return "0".into();
        }
        let mut limbs = self.0.clone();
        let mut chunks = Vec::new();
        while !limbs.is_empty() {
            let mut rem = 0u64;
            for l in limbs.iter_mut().rev() {
                let cur = rem << 32 | u64::from(*l);
                *l = (cur / 1_000_000_000) as u32;
                rem = cur % 1_000_000_000;
            }
            chunks.push(rem as u32);
            while limbs.last() == Some(&0) {
                limbs.pop();
            }
        }
        let mut s = chunks.pop().map_or_else(String::new, |c| c.to_string());
        for c in chunks.iter().rev() {
            s.push_str(&format!("{c:09}"));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `INCRBYFLOAT` of `by` on a key holding `cur` (None: no key), as text.
    fn incr(cur: Option<&str>, by: &str) -> Result<String, &'static str> {
        let cur = match cur {
            None => Ld::ZERO,
            Some(c) => parse(c.as_bytes()).ok_or("not a float")?,
        };
        let by = parse(by.as_bytes()).ok_or("not a float")?;
        add(cur, by).map(format).ok_or("NaN or Infinity")
    }

    /// Every expected text below was read off redis-server 7.0.15 (x86-64, glibc) with the
    /// same commands.
    #[test]
    fn sums_read_as_redis_prints_them() {
        let cases: &[(Option<&str>, &str, &str)] = &[
            (None, "1.5", "1.5"),
            (Some("10.5"), "0.1", "10.6"),
            (Some("1.1"), "0.1", "1.2"),
            (Some("0.1"), "0.2", "0.3"),
            (None, "0x10", "16"),
            (None, "0x1p-2", "0.25"),
            (None, "0x.8", "0.5"),
            (None, "5.", "5"),
            (None, ".5", "0.5"),
            (None, "-0", "0"),
            (None, "1e-4940", "0"),
            (None, "0.000003814697265625", "0.00000381469726562"),
            (None, "0.000011444091796875", "0.00001144409179688"),
            (Some("3.0e2"), "1e-3", "300.001"),
            (Some("5000"), "-5000", "0"),
            (None, "-1e-20", "0"),
            (None, "1.9e-4951", "0"),
            (None, "-0x1p-16445", "0"),
            // Forty digits, most of them before the point: n / 10 has more than 128 bits.
            (
                None,
                "804152490966860.7804907809091344919489698e24",
                "804152490966860780516358304818415009792",
            ),
        ];
        for &(cur, by, want) in cases {
            assert_eq!(incr(cur, by).as_deref(), Ok(want), "{cur:?} + {by}");
        }
    }

    #[test]
    fn out_of_range_and_malformed_texts_are_refused() {
        for bad in [
            "1e-4960",
            "1e4933",
            "nan",
            "nan(12)",
            "-nan",
            " 1",
            "1 ",
            "0x",
            "1e",
            "1e+",
            "",
            "abc",
            "1_000",
            "+-1",
            "-",
            ".",
            "0x1p",
            "2\0ab",
            "\0",
            "infin",
            "1e-4951",
            "1.8e-4951",
        ] {
            assert_eq!(parse(bad.as_bytes()), None, "{bad:?}");
        }
        assert_eq!(parse(&vec![b'1'; MAX_CHARS]), None);
        assert!(
            parse(&vec![b'1'; MAX_CHARS - 1]).is_none(),
            "a 5119-digit integer overflows"
        );
        assert_eq!(incr(None, "infinity"), Err("NaN or Infinity"));
        assert_eq!(incr(Some("inf"), "-inf"), Err("NaN or Infinity"));
        assert_eq!(
            incr(
                Some("1.18973149535723176502e4932"),
                "1.18973149535723176502e4932"
            ),
            Err("NaN or Infinity")
        );
    }

    #[test]
    fn a_huge_sum_prints_every_integer_digit() {
        // 1e4000 is not a binary number: its nearest value is a little below it and prints
        // 4000 digits that are not all nines or zeros (redis-server 7.0.15 prints the same).
        let s = incr(None, "1e4000").unwrap();
        assert_eq!(s.len(), 4000);
        assert!(s.starts_with("99999999999999999999654638730996237849324925835069576313015"));
        assert!(s.ends_with("20629864357825543441956972190272729951206648276349901340672"));
    }

    #[test]
    fn tenths_accumulate_in_long_double() {
        // Ten additions of 0.1 in long double: each rounded to 64 bits, printed to 17
        // decimals: "1" on Redis, where f64 would print 0.99999999999999989.
        let mut v = Ld::ZERO;
        let tenth = parse(b"0.1").unwrap();
        for _ in 0..10 {
            v = add(v, tenth).unwrap();
        }
        assert_eq!(format(v), "1");
    }

    #[test]
    fn the_largest_and_smallest_values_round_trip() {
        let max = Ld::Finite {
            neg: false,
            sig: u64::MAX,
            exp: MAX_EXP,
        };
        let text = format(max);
        assert_eq!(text.len(), 4933);
        assert_eq!(parse(text.as_bytes()), Some(max));
        let tiny = Ld::Finite {
            neg: true,
            sig: 1,
            exp: MIN_EXP,
        };
        assert_eq!(parse(b"-0x1p-16445"), Some(tiny));
        assert_eq!(format(tiny), "0");
    }
}
