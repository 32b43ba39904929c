//! Shamir t-of-n secret sharing of 32-byte secrets over the Curve25519
//! scalar field (integers mod the prime `l = 2^252 + 27742317777372353535851937790883648493`).
//!
//! A 32-byte secret is split into two 16-byte little-endian halves, each
//! below `2^128 < l` and so a field element as is. Each half gets its own
//! random polynomial of degree `threshold - 1`, evaluated at the same
//! x-coordinates. A share is therefore `(x, [y0, y1])`, encoded as
//!
//! ```text
//! x (u32, big-endian, 4 bytes) || y0 (canonical scalar, 32 bytes LE) || y1 (32 bytes) = 68 bytes
//! ```
//!
//! Reconstruction interpolates at 0 from the first `threshold` shares and
//! checks every further share against that polynomial.
//!
//! ```
//! use fedcredit_crypto::shamir::{reconstruct, split};
//!
//! let secret = [42u8; 32];
//! let shares = split(&secret, 3, &[1, 2, 3, 4, 5], &mut rand::rngs::OsRng)?;
//! let some: Vec<_> = shares.into_iter().skip(2).collect(); // x = 3, 4, 5
//! assert_eq!(*reconstruct(&some, 3)?, secret);
//! # Ok::<(), fedcredit_crypto::CryptoError>(())
//! ```

use std::collections::BTreeSet;
use std::fmt;

use curve25519_dalek::Scalar;
use rand_core::{CryptoRng, RngCore};
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, Zeroizing};

use crate::CryptoError;

/// Length of an encoded [`Share`].
pub const SHARE_LEN: usize = 68;

/// One share of a 32-byte secret: the two polynomials' values at `x`.
/// Not `Clone` (move it, or go through [`Share::to_bytes`]); zeroized on
/// drop; `Debug` prints only `x`.
pub struct Share {
    /// The x-coordinate (never 0: the secret lives at 0).
    x: u32,
    /// The values of the low-half and high-half polynomials at `x`.
    y: [Scalar; 2],
}

impl Share {
    /// The share's x-coordinate.
    pub fn x(&self) -> u32 {
        self.x
    }

    /// `x` (u32 big-endian) `||` `y0` (32 bytes) `||` `y1` (32 bytes).
    pub fn to_bytes(&self) -> Zeroizing<[u8; SHARE_LEN]> {
        let mut out = Zeroizing::new([0u8; SHARE_LEN]);
        out[..4].copy_from_slice(&self.x.to_be_bytes());
        out[4..36].copy_from_slice(self.y[0].as_bytes());
        out[36..68].copy_from_slice(self.y[1].as_bytes());
        out
    }

    /// Decodes [`Share::to_bytes`] output.
    ///
    /// Errors: [`CryptoError::InvalidLength`] unless 68 bytes;
    /// [`CryptoError::ZeroShareIndex`] if `x == 0`;
    /// [`CryptoError::InvalidShare`] if a `y` is not a canonical scalar.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CryptoError> {
        if bytes.len() != SHARE_LEN {
            return Err(CryptoError::InvalidLength {
                what: "share",
                expected: SHARE_LEN,
                got: bytes.len(),
            });
        }
        let mut x = [0u8; 4];
        x.copy_from_slice(&bytes[..4]);
        let x = u32::from_be_bytes(x);
        if x == 0 {
            return Err(CryptoError::ZeroShareIndex);
        }
        let y0 = canonical_scalar(&bytes[4..36])?;
        let y1 = canonical_scalar(&bytes[36..68])?;
        Ok(Share { x, y: [y0, y1] })
    }
}

impl Drop for Share {
    fn drop(&mut self) {
        self.y.zeroize();
    }
}

impl fmt::Debug for Share {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Share")
            .field("x", &self.x)
            .finish_non_exhaustive()
    }
}

/// Decodes 32 bytes as a canonical scalar (< l).
fn canonical_scalar(bytes: &[u8]) -> Result<Scalar, CryptoError> {
    let mut buf = Zeroizing::new([0u8; 32]);
    buf.copy_from_slice(bytes);
    Option::<Scalar>::from(Scalar::from_canonical_bytes(*buf)).ok_or(CryptoError::InvalidShare(
        "y is not a canonical scalar (must be < l)",
    ))
}

/// The two halves of a secret as scalars: bytes 0..16 and 16..32, each read
/// as a little-endian integer below 2^128.
fn secret_halves(secret: &[u8; 32]) -> Zeroizing<[Scalar; 2]> {
    let mut halves = Zeroizing::new([Scalar::ZERO; 2]);
    for (half, chunk) in halves.iter_mut().zip(secret.chunks_exact(16)) {
        let mut wide = Zeroizing::new([0u8; 32]);
        wide[..16].copy_from_slice(chunk);
        // < 2^128 < l, so the reduction is the identity.
        *half = Scalar::from_bytes_mod_order(*wide);
    }
    halves
}

/// Checks that no x is 0 and no x repeats.
fn check_xs(xs: impl IntoIterator<Item = u32>) -> Result<(), CryptoError> {
    let mut seen = BTreeSet::new();
    for x in xs {
        if x == 0 {
            return Err(CryptoError::ZeroShareIndex);
        }
        if !seen.insert(x) {
            return Err(CryptoError::DuplicateShare { x });
        }
    }
    Ok(())
}

/// Splits `secret` `threshold`-of-`xs.len()`: one share per x in `xs`, in
/// that order. The polynomials' constant terms are the two secret halves;
/// the other `threshold - 1` coefficients per half are drawn from `rng` with
/// `Scalar::random` (for each degree 1.., low half then high half).
///
/// Errors: [`CryptoError::InvalidThreshold`] unless
/// `1 <= threshold <= xs.len()`; [`CryptoError::ZeroShareIndex`] or
/// [`CryptoError::DuplicateShare`] for a bad `xs`.
pub fn split<R: CryptoRng + RngCore>(
    secret: &[u8; 32],
    threshold: usize,
    xs: &[u32],
    rng: &mut R,
) -> Result<Vec<Share>, CryptoError> {
    if threshold == 0 || threshold > xs.len() {
        return Err(CryptoError::InvalidThreshold {
            threshold,
            shares: xs.len(),
        });
    }
    check_xs(xs.iter().copied())?;

    // coefficients[k] = [low-half, high-half] coefficient of x^k.
    let mut coefficients: Zeroizing<Vec<[Scalar; 2]>> =
        Zeroizing::new(Vec::with_capacity(threshold));
    coefficients.push(*secret_halves(secret));
    for _ in 1..threshold {
        let lo = Scalar::random(rng);
        let hi = Scalar::random(rng);
        coefficients.push([lo, hi]);
    }

    let shares = xs
        .iter()
        .map(|&x| {
            let xs = Scalar::from(x);
            // Horner's rule, highest degree first.
            let mut y = [Scalar::ZERO; 2];
            for c in coefficients.iter().rev() {
                y[0] = y[0] * xs + c[0];
                y[1] = y[1] * xs + c[1];
            }
            Share { x, y }
        })
        .collect();
    Ok(shares)
}

/// Lagrange interpolation of the polynomials through `base` shares,
/// precomputed for evaluation at arbitrary points (barycentric weights).
struct Interpolator<'a> {
    /// The shares defining the polynomials.
    base: &'a [Share],
    /// The x-coordinates as scalars.
    xs: Vec<Scalar>,
    /// `1 / prod_{j != i} (x_i - x_j)`.
    inv_denominators: Vec<Scalar>,
}

impl<'a> Interpolator<'a> {
    /// Precomputes the weights; `base` x-coordinates must be distinct.
    fn new(base: &'a [Share]) -> Self {
        let xs: Vec<Scalar> = base.iter().map(|s| Scalar::from(s.x)).collect();
        let mut inv_denominators: Vec<Scalar> = xs
            .iter()
            .enumerate()
            .map(|(i, xi)| {
                xs.iter()
                    .enumerate()
                    .filter(|&(j, _)| j != i)
                    .fold(Scalar::ONE, |acc, (_, xj)| acc * (xi - xj))
            })
            .collect();
        // Nonzero: the x are distinct u32s, hence distinct mod l.
        Scalar::batch_invert(&mut inv_denominators);
        Self {
            base,
            xs,
            inv_denominators,
        }
    }

    /// Both polynomials' values at `z`:
    /// `sum_i y_i * prod_{j != i} (z - x_j) / prod_{j != i} (x_i - x_j)`.
    fn eval(&self, z: Scalar) -> Zeroizing<[Scalar; 2]> {
        let n = self.xs.len();
        // suffix[i] = prod_{j >= i} (z - x_j)
        let mut suffix = vec![Scalar::ONE; n + 1];
        for i in (0..n).rev() {
            suffix[i] = suffix[i + 1] * (z - self.xs[i]);
        }
        let mut prefix = Scalar::ONE;
        let mut acc = Zeroizing::new([Scalar::ZERO; 2]);
        for i in 0..n {
            let basis = prefix * suffix[i + 1] * self.inv_denominators[i];
            acc[0] += self.base[i].y[0] * basis;
            acc[1] += self.base[i].y[1] * basis;
            prefix *= z - self.xs[i];
        }
        acc
    }
}

/// Reconstructs the secret by Lagrange interpolation at 0 from the first
/// `threshold` shares, and checks any further shares against the
/// interpolated polynomials.
///
/// Errors: [`CryptoError::InvalidThreshold`] if `threshold == 0`;
/// [`CryptoError::NotEnoughShares`] if `shares.len() < threshold`;
/// [`CryptoError::ZeroShareIndex`] / [`CryptoError::DuplicateShare`] for a bad
/// x among all shares; [`CryptoError::InconsistentShares`] if an extra share
/// is off the polynomials or a reconstructed half is not below 2^128.
///
/// ```
/// use fedcredit_crypto::{CryptoError, shamir::{reconstruct, split}};
///
/// let shares = split(&[1u8; 32], 2, &[10, 20, 30], &mut rand::rngs::OsRng)?;
/// assert_eq!(
///     reconstruct(&shares[..1], 2).unwrap_err(),
///     CryptoError::NotEnoughShares { have: 1, need: 2 }
/// );
/// # Ok::<(), CryptoError>(())
/// ```
pub fn reconstruct(shares: &[Share], threshold: usize) -> Result<Zeroizing<[u8; 32]>, CryptoError> {
    if threshold == 0 {
        return Err(CryptoError::InvalidThreshold {
            threshold,
            shares: shares.len(),
        });
    }
    if shares.len() < threshold {
        return Err(CryptoError::NotEnoughShares {
            have: shares.len(),
            need: threshold,
        });
    }
    check_xs(shares.iter().map(Share::x))?;

    let (base, extra) = shares.split_at(threshold);
    let interpolator = Interpolator::new(base);
    for share in extra {
        let at_x = interpolator.eval(Scalar::from(share.x));
        let on_curve = at_x[0].ct_eq(&share.y[0]) & at_x[1].ct_eq(&share.y[1]);
        if !bool::from(on_curve) {
            return Err(CryptoError::InconsistentShares);
        }
    }

    secret_from_halves(&interpolator.eval(Scalar::ZERO))
}

/// The 32-byte secret from its two interpolated halves, each of which must
/// be below 2^128 (else the shares were not of one 32-byte secret).
fn secret_from_halves(halves: &[Scalar; 2]) -> Result<Zeroizing<[u8; 32]>, CryptoError> {
    let mut secret = Zeroizing::new([0u8; 32]);
    for (half, out) in halves.iter().zip(secret.chunks_exact_mut(16)) {
        let bytes = half.as_bytes();
        if bytes[16..].iter().any(|&b| b != 0) {
            return Err(CryptoError::InconsistentShares);
        }
        out.copy_from_slice(&bytes[..16]);
    }
    Ok(secret)
}

/// Lagrange weights at 0 for one set of x-coordinates, computed once. When
/// many secrets were shared over the same x's and the same holders reveal
/// all of them (every member's slot seed, revealed by the same survivors),
/// each then reconstructs in O(t) instead of [`reconstruct`]'s O(t²).
/// It does not cross-check extra shares: use it where every share was
/// already checked against its dealer's commitment.
#[derive(Debug)]
pub struct ZeroWeights {
    xs: Vec<u32>,
    weights: Vec<Scalar>,
}

impl ZeroWeights {
    /// The weights for interpolating at 0 from shares at `xs` (distinct, nonzero).
    ///
    /// ```
    /// use fedcredit_crypto::shamir::{split, ZeroWeights};
    ///
    /// let (a, b) = ([1u8; 32], [2u8; 32]);
    /// let mut rng = rand::rngs::OsRng;
    /// let sa = split(&a, 2, &[1, 2, 3], &mut rng)?;
    /// let sb = split(&b, 2, &[1, 2, 3], &mut rng)?;
    /// let w = ZeroWeights::new(&[2, 3])?;
    /// assert_eq!(*w.reconstruct(&sa[1..])?, a);
    /// assert_eq!(*w.reconstruct(&sb[1..])?, b);
    /// # Ok::<(), fedcredit_crypto::CryptoError>(())
    /// ```
    pub fn new(xs: &[u32]) -> Result<Self, CryptoError> {
        if xs.is_empty() {
            return Err(CryptoError::InvalidThreshold {
                threshold: 0,
                shares: 0,
            });
        }
        check_xs(xs.iter().copied())?;
        let points: Vec<Scalar> = xs.iter().map(|x| Scalar::from(*x)).collect();
        // w_i = prod_{j != i} x_j / prod_{j != i} (x_j - x_i).
        let mut denominators: Vec<Scalar> = points
            .iter()
            .enumerate()
            .map(|(i, xi)| {
                points
                    .iter()
                    .enumerate()
                    .filter(|&(j, _)| j != i)
                    .fold(Scalar::ONE, |acc, (_, xj)| acc * (xj - xi))
            })
            .collect();
        // Nonzero: the x are distinct u32s, hence distinct mod l.
        Scalar::batch_invert(&mut denominators);
        let weights = points
            .iter()
            .enumerate()
            .zip(denominators)
            .map(|((i, _), inv)| {
                points
                    .iter()
                    .enumerate()
                    .filter(|&(j, _)| j != i)
                    .fold(inv, |acc, (_, xj)| acc * xj)
            })
            .collect();
        Ok(Self {
            xs: xs.to_vec(),
            weights,
        })
    }

    /// Reconstructs a secret from exactly one share per x, in the order the
    /// weights were made for.
    ///
    /// Errors: [`CryptoError::InvalidShare`] if the shares' x's are not
    /// those; [`CryptoError::InconsistentShares`] if a reconstructed half is
    /// not below 2^128.
    pub fn reconstruct(&self, shares: &[Share]) -> Result<Zeroizing<[u8; 32]>, CryptoError> {
        if shares.len() != self.xs.len() || shares.iter().zip(&self.xs).any(|(s, x)| s.x != *x) {
            return Err(CryptoError::InvalidShare(
                "the shares are not at the x-coordinates the weights were made for",
            ));
        }
        let mut halves = Zeroizing::new([Scalar::ZERO; 2]);
        for (share, w) in shares.iter().zip(&self.weights) {
            halves[0] += share.y[0] * w;
            halves[1] += share.y[1] * w;
        }
        secret_from_halves(&halves)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha20Rng;

    fn rng() -> ChaCha20Rng {
        ChaCha20Rng::seed_from_u64(0x5ec2e7)
    }

    fn secret() -> [u8; 32] {
        let mut s = [0u8; 32];
        for (i, b) in s.iter_mut().enumerate() {
            *b = 0xff - i as u8;
        }
        s
    }

    #[test]
    fn threshold_one_is_the_secret_everywhere() {
        let shares = split(&secret(), 1, &[1, 2, 3], &mut rng()).expect("valid");
        for s in &shares {
            assert_eq!(&s.y[0].as_bytes()[..16], &secret()[..16]);
            assert_eq!(&s.y[1].as_bytes()[..16], &secret()[16..]);
            assert_eq!(
                *reconstruct(std::slice::from_ref(s), 1).expect("ok"),
                secret()
            );
        }
    }

    #[test]
    fn threshold_two_by_hand() {
        // With t = 2, y(x) = s + a*x, so s = 2*y(1) - y(2).
        let shares = split(&secret(), 2, &[1, 2], &mut rng()).expect("valid");
        let s0 = shares[0].y[0] + shares[0].y[0] - shares[1].y[0];
        assert_eq!(&s0.as_bytes()[..16], &secret()[..16]);
        assert_eq!(*reconstruct(&shares, 2).expect("ok"), secret());
    }

    #[test]
    fn encoding_roundtrip_and_layout() {
        let shares = split(&secret(), 3, &[0x0102_0304, 7, 9], &mut rng()).expect("valid");
        let bytes = shares[0].to_bytes();
        assert_eq!(&bytes[..4], &[1, 2, 3, 4]);
        assert_eq!(&bytes[4..36], shares[0].y[0].as_bytes());
        let back = Share::from_bytes(bytes.as_slice()).expect("valid");
        assert_eq!(back.x(), 0x0102_0304);
        assert_eq!(*back.to_bytes(), *bytes);
        assert_eq!(format!("{back:?}"), "Share { x: 16909060, .. }");
    }

    #[test]
    fn from_bytes_validates() {
        assert_eq!(
            Share::from_bytes(&[1; 67]).err(),
            Some(CryptoError::InvalidLength {
                what: "share",
                expected: 68,
                got: 67
            })
        );
        let mut zero_x = [0u8; SHARE_LEN];
        assert_eq!(
            Share::from_bytes(&zero_x).err(),
            Some(CryptoError::ZeroShareIndex)
        );
        zero_x[3] = 1;
        assert!(Share::from_bytes(&zero_x).is_ok());
        let mut big_y = zero_x;
        big_y[36..68].copy_from_slice(&[0xff; 32]);
        assert!(matches!(
            Share::from_bytes(&big_y).err(),
            Some(CryptoError::InvalidShare(_))
        ));
        // l itself is not canonical.
        let l = Scalar::ZERO - Scalar::ONE; // l - 1
        let mut l_bytes = *l.as_bytes();
        l_bytes[0] += 1;
        let mut at_l = zero_x;
        at_l[4..36].copy_from_slice(&l_bytes);
        assert!(Share::from_bytes(&at_l).is_err());
    }

    #[test]
    fn split_validates() {
        let s = secret();
        assert_eq!(
            split(&s, 0, &[1, 2], &mut rng()).err(),
            Some(CryptoError::InvalidThreshold {
                threshold: 0,
                shares: 2
            })
        );
        assert_eq!(
            split(&s, 3, &[1, 2], &mut rng()).err(),
            Some(CryptoError::InvalidThreshold {
                threshold: 3,
                shares: 2
            })
        );
        assert_eq!(
            split(&s, 1, &[1, 0], &mut rng()).err(),
            Some(CryptoError::ZeroShareIndex)
        );
        assert_eq!(
            split(&s, 1, &[4, 5, 4], &mut rng()).err(),
            Some(CryptoError::DuplicateShare { x: 4 })
        );
    }

    #[test]
    fn reconstruct_validates() {
        let shares = split(&secret(), 2, &[1, 2, 3], &mut rng()).expect("valid");
        assert_eq!(
            reconstruct(&shares, 0).err(),
            Some(CryptoError::InvalidThreshold {
                threshold: 0,
                shares: 3
            })
        );
        assert_eq!(
            reconstruct(&shares, 4).err(),
            Some(CryptoError::NotEnoughShares { have: 3, need: 4 })
        );
        let dup = vec![
            Share::from_bytes(shares[0].to_bytes().as_slice()).expect("valid"),
            Share::from_bytes(shares[1].to_bytes().as_slice()).expect("valid"),
            Share::from_bytes(shares[0].to_bytes().as_slice()).expect("valid"),
        ];
        assert_eq!(
            reconstruct(&dup, 2).err(),
            Some(CryptoError::DuplicateShare { x: 1 })
        );
    }

    #[test]
    fn extra_share_is_checked() {
        let shares = split(&secret(), 2, &[1, 2, 3], &mut rng()).expect("valid");
        assert_eq!(*reconstruct(&shares, 2).expect("consistent"), secret());
        let mut bytes = *shares[2].to_bytes();
        bytes[4] ^= 1;
        let bad = Share::from_bytes(&bytes).expect("still canonical");
        let mixed = vec![
            Share::from_bytes(shares[0].to_bytes().as_slice()).expect("valid"),
            Share::from_bytes(shares[1].to_bytes().as_slice()).expect("valid"),
            bad,
        ];
        assert_eq!(
            reconstruct(&mixed, 2).err(),
            Some(CryptoError::InconsistentShares)
        );
        // The first two alone still reconstruct.
        assert_eq!(*reconstruct(&mixed[..2], 2).expect("ok"), secret());
    }

    #[test]
    fn shares_from_different_splits_are_rejected() {
        let a = split(&secret(), 2, &[1, 2], &mut rng()).expect("valid");
        let b = split(&[0; 32], 2, &[1, 2], &mut ChaCha20Rng::seed_from_u64(9)).expect("valid");
        let mixed = vec![
            Share::from_bytes(a[0].to_bytes().as_slice()).expect("valid"),
            Share::from_bytes(b[1].to_bytes().as_slice()).expect("valid"),
        ];
        // Interpolating unrelated points gives a random field element, whose
        // halves are >= 2^128 with overwhelming probability.
        assert_eq!(
            reconstruct(&mixed, 2).err(),
            Some(CryptoError::InconsistentShares)
        );
    }

    #[test]
    fn zero_weights_refuse_other_points() {
        let shares = split(&secret(), 2, &[1, 2, 3], &mut rng()).expect("valid");
        let w = ZeroWeights::new(&[1, 2]).expect("valid");
        assert!(matches!(
            w.reconstruct(&shares[1..]),
            Err(CryptoError::InvalidShare(_))
        ));
        assert!(matches!(
            w.reconstruct(&shares[..1]),
            Err(CryptoError::InvalidShare(_))
        ));
        assert!(ZeroWeights::new(&[]).is_err());
        assert!(ZeroWeights::new(&[0, 1]).is_err());
        assert!(ZeroWeights::new(&[2, 2]).is_err());
    }

    proptest::proptest! {
        /// Weights made once reconstruct every secret shared over the same
        /// points exactly as [`reconstruct`] does, from any t of them.
        #[test]
        fn zero_weights_agree_with_reconstruct(
            t in 1usize..8,
            extra in 0usize..5,
            secrets in proptest::collection::vec(proptest::array::uniform32(proptest::prelude::any::<u8>()), 1..5),
            seed in proptest::prelude::any::<u64>(),
        ) {
            let mut rng = ChaCha20Rng::seed_from_u64(seed);
            let xs: Vec<u32> = (1..=(t + extra) as u32).map(|x| x * 7 + 3).collect();
            let pick: Vec<usize> = (extra..t + extra).collect();
            let w = ZeroWeights::new(&pick.iter().map(|i| xs[*i]).collect::<Vec<_>>()).expect("valid");
            for s in &secrets {
                let shares = split(s, t, &xs, &mut rng).expect("valid");
                let chosen: Vec<Share> = pick.iter().map(|i| Share::from_bytes(&*shares[*i].to_bytes()).expect("valid")).collect();
                proptest::prop_assert_eq!(*w.reconstruct(&chosen).expect("valid"), *s);
                proptest::prop_assert_eq!(*reconstruct(&chosen, t).expect("valid"), *s);
            }
        }
    }

    #[test]
    fn split_is_deterministic_given_the_rng() {
        let a = split(&secret(), 3, &[1, 2, 3], &mut rng()).expect("valid");
        let b = split(&secret(), 3, &[1, 2, 3], &mut rng()).expect("valid");
        for (a, b) in a.iter().zip(&b) {
            assert_eq!(*a.to_bytes(), *b.to_bytes());
        }
    }
}
