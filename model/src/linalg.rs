//! Small dense linear algebra for the Newton step: packed upper triangles
//! and a Cholesky factorization with pivot checks.
//!
//! The packed layout is the upper triangle, row-major, diagonal included:
//! `a00 a01 … a0m a11 a12 … a1m … amm`, `m(m+1)/2` values for an `m×m`
//! symmetric matrix.
//!
//! ```
//! use fedcredit_model::linalg::{cholesky, cholesky_solve, unpack_upper};
//!
//! let a = unpack_upper(&[4.0, 2.0, 3.0], 2).unwrap(); // [[4, 2], [2, 3]]
//! let l = cholesky(&a).unwrap();
//! let x = cholesky_solve(&l, &[2.0, 1.0]).unwrap();
//! assert!((4.0 * x[0] + 2.0 * x[1] - 2.0).abs() < 1e-15);
//! assert!((2.0 * x[0] + 3.0 * x[1] - 1.0).abs() < 1e-15);
//! ```

use ndarray::Array2;

use crate::error::{ModelError, Result, check_len};

/// Number of packed values for an `m×m` symmetric matrix: `m(m+1)/2`.
pub fn packed_len(m: usize) -> usize {
    m * (m + 1) / 2
}

/// Index of `(i, j)`, `i ≤ j < m`, in the packed upper triangle.
pub fn packed_index(i: usize, j: usize, m: usize) -> usize {
    debug_assert!(i <= j && j < m);
    // rows 0..i hold m + (m-1) + … + (m-i+1) = i·m − i(i−1)/2 values
    i * m - i * i.saturating_sub(1) / 2 + (j - i)
}

/// Expand a packed upper triangle into a full symmetric matrix.
pub fn unpack_upper(packed: &[f64], m: usize) -> Result<Array2<f64>> {
    check_len("packed upper triangle", packed_len(m), packed.len())?;
    let mut a = Array2::zeros((m, m));
    let mut k = 0;
    for i in 0..m {
        for j in i..m {
            a[[i, j]] = packed[k];
            a[[j, i]] = packed[k];
            k += 1;
        }
    }
    Ok(a)
}

/// Pack the upper triangle (row-major, diagonal included) of a square matrix.
pub fn pack_upper(a: &Array2<f64>) -> Result<Vec<f64>> {
    let m = a.nrows();
    check_len("square matrix columns", m, a.ncols())?;
    let mut out = Vec::with_capacity(packed_len(m));
    for i in 0..m {
        for j in i..m {
            out.push(a[[i, j]]);
        }
    }
    Ok(out)
}

/// Lower-triangular `L` with `L·Lᵀ = a`, reading only the lower triangle of `a`.
///
/// Fails with [`ModelError::NotPositiveDefinite`] naming the first pivot
/// that is not finite or not above `m·ε·max_i a_ii` (LAPACK's rank
/// tolerance), i.e. when `a` is not numerically positive definite.
pub fn cholesky(a: &Array2<f64>) -> Result<Array2<f64>> {
    let m = a.nrows();
    check_len("square matrix columns", m, a.ncols())?;
    let max_diag = (0..m).map(|i| a[[i, i]]).fold(0.0_f64, f64::max);
    let tol = m as f64 * f64::EPSILON * max_diag;
    let mut l = Array2::<f64>::zeros((m, m));
    for j in 0..m {
        let mut d = a[[j, j]];
        for k in 0..j {
            d -= l[[j, k]] * l[[j, k]];
        }
        if !d.is_finite() || d <= tol {
            return Err(ModelError::NotPositiveDefinite { pivot: j, value: d });
        }
        let djj = d.sqrt();
        l[[j, j]] = djj;
        for i in j + 1..m {
            let mut s = a[[i, j]];
            for k in 0..j {
                s -= l[[i, k]] * l[[j, k]];
            }
            l[[i, j]] = s / djj;
        }
    }
    Ok(l)
}

/// Solve `L·Lᵀ x = b` given the factor from [`cholesky`].
pub fn cholesky_solve(l: &Array2<f64>, b: &[f64]) -> Result<Vec<f64>> {
    let m = l.nrows();
    check_len("right-hand side", m, b.len())?;
    // forward: L z = b
    let mut z = b.to_vec();
    for i in 0..m {
        let mut s = z[i];
        for k in 0..i {
            s -= l[[i, k]] * z[k];
        }
        z[i] = s / l[[i, i]];
    }
    // backward: Lᵀ x = z
    for i in (0..m).rev() {
        let mut s = z[i];
        for k in i + 1..m {
            s -= l[[k, i]] * z[k];
        }
        z[i] = s / l[[i, i]];
    }
    Ok(z)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;
    use proptest::prelude::*;

    #[test]
    fn packed_round_trip_and_index() {
        let a = array![[1.0, 2.0, 3.0], [2.0, 4.0, 5.0], [3.0, 5.0, 6.0]];
        let p = pack_upper(&a).expect("square");
        assert_eq!(p, [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        assert_eq!(unpack_upper(&p, 3).expect("len"), a);
        let mut k = 0;
        for i in 0..3 {
            for j in i..3 {
                assert_eq!(packed_index(i, j, 3), k);
                k += 1;
            }
        }
        assert!(unpack_upper(&p, 2).is_err());
    }

    #[test]
    fn not_positive_definite_names_the_pivot() {
        // Second row is a multiple of the first: singular at pivot 1.
        let a = array![[1.0, 2.0, 0.0], [2.0, 4.0, 0.0], [0.0, 0.0, 1.0]];
        match cholesky(&a) {
            Err(ModelError::NotPositiveDefinite { pivot, .. }) => assert_eq!(pivot, 1),
            other => panic!("{other:?}"),
        }
        let a = array![[-1.0]];
        assert!(matches!(
            cholesky(&a),
            Err(ModelError::NotPositiveDefinite { pivot: 0, .. })
        ));
        let a = array![[f64::NAN]];
        assert!(cholesky(&a).is_err());
    }

    proptest! {
        #[test]
        fn solves_spd_systems(
            entries in prop::collection::vec(-3.0f64..3.0, 25),
            b in prop::collection::vec(-10.0f64..10.0, 5),
        ) {
            let g = Array2::from_shape_vec((5, 5), entries).expect("shape");
            let a = g.t().dot(&g) + Array2::<f64>::eye(5);
            let l = cholesky(&a).expect("spd");
            prop_assert!((l.dot(&l.t()) - &a).iter().all(|v| v.abs() < 1e-10));
            let x = cholesky_solve(&l, &b).expect("len");
            let r = a.dot(&ndarray::Array1::from(x));
            for (ri, bi) in r.iter().zip(&b) {
                prop_assert!((ri - bi).abs() < 1e-9);
            }
        }
    }
}
