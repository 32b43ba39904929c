//! Row-range views that keep the input's lifetime.
//!
//! ndarray 0.16's `s!` macro expands to `#[allow(unsafe_code)]`, which the
//! workspace's `unsafe_code = "forbid"` lint rejects (error E0453) in every
//! crate of the workspace, so slicing rows goes through these helpers (or
//! `slice_axis*`) instead. Used to split a party's rows, or all rows into
//! simulated parties.
//!
//! ```
//! use fedcredit_model::rows::{rows1, rows2};
//! use ndarray::{array, Array2};
//!
//! let x: Array2<f64> = array![[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]];
//! let y = array![0.0, 1.0, 1.0];
//! assert_eq!(rows2(x.view(), 1..3), array![[3.0, 4.0], [5.0, 6.0]]);
//! assert_eq!(rows1(y.view(), 0..1), array![0.0]);
//! ```

use std::ops::Range;

use ndarray::{ArrayView1, ArrayView2, Axis, Slice};

/// Rows `r` of a matrix view (panics if `r` is out of bounds, like slicing).
pub fn rows2(mut x: ArrayView2<'_, f64>, r: Range<usize>) -> ArrayView2<'_, f64> {
    x.slice_axis_inplace(Axis(0), Slice::from(r));
    x
}

/// Entries `r` of a vector view (panics if `r` is out of bounds, like slicing).
pub fn rows1(mut y: ArrayView1<'_, f64>, r: Range<usize>) -> ArrayView1<'_, f64> {
    y.slice_axis_inplace(Axis(0), Slice::from(r));
    y
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{Array1, Array2};

    #[test]
    fn slices_rows() {
        let x = Array2::from_shape_fn((5, 2), |(i, j)| (10 * i + j) as f64);
        let v = rows2(x.view(), 1..3);
        assert_eq!(v.dim(), (2, 2));
        assert_eq!(v[[0, 1]], 11.0);
        let y = Array1::from_iter((0..5).map(f64::from));
        assert_eq!(rows1(y.view(), 3..5).to_vec(), [3.0, 4.0]);
        assert_eq!(rows1(y.view(), 2..2).len(), 0);
    }
}
