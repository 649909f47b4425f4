//! Typed access to dotted JSON paths, with errors that name the path.

use serde_json::Value;

use crate::error::LoadErrorKind;

/// Walks `path` (`a.b.c`; object keys only) from `root`.
pub(crate) fn at<'a>(root: &'a Value, path: &str) -> Result<&'a Value, LoadErrorKind> {
    let mut v = root;
    for key in path.split('.') {
        v = match v {
            Value::Object(map) => map.get(key),
            _ => None,
        }
        .ok_or_else(|| LoadErrorKind::MissingField {
            field: path.to_owned(),
        })?;
    }
    Ok(v)
}

fn wrong(path: &str, expected: &'static str) -> LoadErrorKind {
    LoadErrorKind::WrongType {
        field: path.to_owned(),
        expected,
    }
}

/// A finite number.
pub(crate) fn f64_at(root: &Value, path: &str) -> Result<f64, LoadErrorKind> {
    number(at(root, path)?, path)
}

fn number(v: &Value, path: &str) -> Result<f64, LoadErrorKind> {
    match v.as_f64() {
        Some(x) if x.is_finite() => Ok(x),
        _ => Err(wrong(path, "a finite number")),
    }
}

/// A non-negative integer.
pub(crate) fn usize_at(root: &Value, path: &str) -> Result<usize, LoadErrorKind> {
    at(root, path)?
        .as_u64()
        .and_then(|n| usize::try_from(n).ok())
        .ok_or_else(|| wrong(path, "a non-negative integer"))
}

/// An integer (any sign).
pub(crate) fn i64_at(root: &Value, path: &str) -> Result<i64, LoadErrorKind> {
    at(root, path)?
        .as_i64()
        .ok_or_else(|| wrong(path, "an integer"))
}

/// A string.
pub(crate) fn str_at<'a>(root: &'a Value, path: &str) -> Result<&'a str, LoadErrorKind> {
    at(root, path)?
        .as_str()
        .ok_or_else(|| wrong(path, "a string"))
}

/// An object.
pub(crate) fn object_at<'a>(
    root: &'a Value,
    path: &str,
) -> Result<&'a serde_json::Map<String, Value>, LoadErrorKind> {
    at(root, path)?
        .as_object()
        .ok_or_else(|| wrong(path, "an object"))
}

/// An array.
pub(crate) fn array_at<'a>(root: &'a Value, path: &str) -> Result<&'a [Value], LoadErrorKind> {
    at(root, path)?
        .as_array()
        .map(Vec::as_slice)
        .ok_or_else(|| wrong(path, "an array"))
}

/// An array of exactly `N` finite numbers.
pub(crate) fn f64_array<const N: usize>(
    root: &Value,
    path: &str,
) -> Result<[f64; N], LoadErrorKind> {
    let items = array_at(root, path)?;
    if items.len() != N {
        return Err(LoadErrorKind::ShapeMismatch {
            field: path.to_owned(),
            expected: format!("{N} numbers"),
            found: format!("{} entries", items.len()),
        });
    }
    let mut out = [0.0; N];
    for (i, (o, v)) in out.iter_mut().zip(items).enumerate() {
        *o = number(v, &format!("{path}.{i}"))?;
    }
    Ok(out)
}

/// An array of non-negative integers.
pub(crate) fn usize_vec(root: &Value, path: &str) -> Result<Vec<usize>, LoadErrorKind> {
    array_at(root, path)?
        .iter()
        .enumerate()
        .map(|(i, v)| {
            v.as_u64()
                .and_then(|n| usize::try_from(n).ok())
                .ok_or_else(|| wrong(&format!("{path}.{i}"), "a non-negative integer"))
        })
        .collect()
}

/// A nested array of finite numbers with an exact shape (`[]` = a number), flattened.
pub(crate) fn f64_tensor(v: &Value, shape: &[usize]) -> Result<Vec<f64>, String> {
    fn walk(v: &Value, shape: &[usize], out: &mut Vec<f64>) -> Result<(), String> {
        match shape.split_first() {
            None => match v.as_f64() {
                Some(x) if x.is_finite() => {
                    out.push(x);
                    Ok(())
                }
                _ => Err(format!("expected a finite number, found {v}")),
            },
            Some((n, rest)) => {
                let items = v
                    .as_array()
                    .ok_or_else(|| format!("expected an array of {n}, found {v}"))?;
                if items.len() != *n {
                    return Err(format!(
                        "expected {n} entries, found {} (shape {:?})",
                        items.len(),
                        shape
                    ));
                }
                items.iter().try_for_each(|item| walk(item, rest, out))
            }
        }
    }
    let mut out = Vec::with_capacity(shape.iter().product());
    walk(v, shape, &mut out)?;
    Ok(out)
}
