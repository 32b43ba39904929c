//! The scikit-learn reference fit: the pooled standardized rows written as
//! NPY files, `bench/sklearn_fit.py` run with one BLAS thread.

use std::io::{BufWriter, Write};
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};
use ndarray::{ArrayView1, ArrayView2};

use super::{L2, TOL, finish, progress};

/// The reference fit, run with the interpreter of `--python`.
const SKLEARN_SCRIPT: &str = include_str!("../../bench/sklearn_fit.py");

/// One BLAS thread, like the central fit: on a shared 2-core machine,
/// OpenBLAS's spinning threads made the fit take anywhere from 3 to 33 s.
pub(super) const ONE_BLAS_THREAD: [(&str, &str); 3] = [
    ("OPENBLAS_NUM_THREADS", "1"),
    ("OMP_NUM_THREADS", "1"),
    ("MKL_NUM_THREADS", "1"),
];

/// scikit-learn's fit, as `sklearn_fit.py` reports it.
pub(super) struct SklearnFit {
    pub(super) version: String,
    pub(super) solver: String,
    pub(super) seconds: f64,
    /// CPU seconds of all its threads (BLAS may use several).
    pub(super) cpu: Option<f64>,
    pub(super) n_iter: u64,
    /// Intercept first, standardized units.
    pub(super) beta: Vec<f64>,
}

/// Whether `python` can run `import {imports}`.
fn python_imports(python: &str, imports: &str) -> bool {
    Command::new(python)
        .args(["-c", &format!("import {imports}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Makes sure `python` can import `imports`, installing `packages` once
/// with pip if it cannot (the bench's reference fits need them).
pub(super) fn ensure_python(python: &str, imports: &str, packages: &[&str]) -> Result<()> {
    if python_imports(python, imports) {
        return Ok(());
    }
    progress(&format!(
        "`import {imports}` fails; trying `pip install --quiet {}`",
        packages.join(" ")
    ));
    let _ = Command::new(python)
        .args(["-m", "pip", "install", "--quiet"])
        .args(packages)
        .status();
    if !python_imports(python, imports) {
        bail!("`{python}` cannot import {imports}");
    }
    Ok(())
}

/// Runs the reference fit on the pooled standardized rows, installing
/// scikit-learn once with pip if it is missing.
pub(super) fn sklearn_fit(
    python: &str,
    dir: &Path,
    x: ArrayView2<'_, f64>,
    y: ArrayView1<'_, f64>,
) -> Result<SklearnFit> {
    ensure_python(python, "sklearn, numpy", &["scikit-learn", "numpy"])?;
    progress("scikit-learn reference fit");
    let (xp, yp, script) = (
        dir.join("x.npy"),
        dir.join("y.npy"),
        dir.join("sklearn_fit.py"),
    );
    write_npy(&xp, &[x.nrows(), x.ncols()], x.iter().copied())?;
    write_npy(&yp, &[y.len()], y.iter().copied())?;
    std::fs::write(&script, SKLEARN_SCRIPT)
        .with_context(|| format!("writing {}", script.display()))?;
    let out = Command::new(python)
        .arg(&script)
        .arg(&xp)
        .arg(&yp)
        .arg(L2.to_string())
        .arg(TOL.to_string())
        .envs(ONE_BLAS_THREAD)
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("running {python}"))?;
    let _ = std::fs::remove_file(&xp);
    if !out.status.success() {
        bail!("sklearn_fit.py failed ({})", out.status);
    }
    let v: serde_json::Value =
        serde_json::from_slice(&out.stdout).context("parsing sklearn_fit.py's output")?;
    let num = |k: &str| {
        v[k].as_f64()
            .with_context(|| format!("sklearn_fit.py: no `{k}`"))
    };
    let mut beta = vec![num("intercept")?];
    for c in v["coef"].as_array().context("sklearn_fit.py: no `coef`")? {
        beta.push(c.as_f64().context("sklearn_fit.py: bad coefficient")?);
    }
    Ok(SklearnFit {
        version: v["sklearn"].as_str().unwrap_or("?").to_owned(),
        solver: v["solver"].as_str().unwrap_or("?").to_owned(),
        seconds: num("fit_seconds")?,
        cpu: v["fit_cpu_seconds"].as_f64(),
        n_iter: v["n_iter"].as_u64().unwrap_or(0),
        beta,
    })
}

/// Writes a little-endian f64 array in the NPY 1.0 format (C order).
fn write_npy(path: &Path, shape: &[usize], values: impl Iterator<Item = f64>) -> Result<()> {
    let dims: Vec<String> = shape.iter().map(usize::to_string).collect();
    let shape = match dims.as_slice() {
        [one] => format!("({one},)"),
        many => format!("({})", many.join(", ")),
    };
    let mut header = format!("{{'descr': '<f8', 'fortran_order': False, 'shape': {shape}, }}");
    // magic (6) + version (2) + length (2) + header + '\n', padded to 64 bytes.
    let unpadded = 10 + header.len() + 1;
    header.push_str(&" ".repeat((64 - unpadded % 64) % 64));
    header.push('\n');
    let len = u16::try_from(header.len()).context("NPY header too long")?;
    let file =
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut w = BufWriter::with_capacity(1 << 20, file);
    w.write_all(b"\x93NUMPY\x01\x00")?;
    w.write_all(&len.to_le_bytes())?;
    w.write_all(header.as_bytes())?;
    for v in values {
        w.write_all(&v.to_le_bytes())?;
    }
    finish(w, path)
}
