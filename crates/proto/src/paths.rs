//! The path rules the file policies share (file integrity's monitored directories, tamper
//! protection's protected ones): what a policy path may be, how a directory's exclusions are
//! checked and applied, and when two directories overlap. Messages start with the field.

/// Bytes of a policy path.
pub const MAX_PATH: usize = 256;

/// An absolute, normalised path: no `.`/`..`/empty components, no trailing `/`, not `/`
/// itself, at most [`MAX_PATH`] bytes, no `;` (the console's list separator), no control
/// character, no leading space.
pub fn check_path(field: &str, p: &str) -> Result<(), String> {
    if !p.starts_with('/') {
        return Err(format!("{field}: {p:?} is not an absolute path"));
    }
    if p == "/" {
        return Err(format!(
            "{field}: \"/\" is the whole file system; name a directory"
        ));
    }
    if p.len() > MAX_PATH {
        return Err(format!("{field}: longer than {MAX_PATH} bytes"));
    }
    if p.ends_with('/')
        || p[1..]
            .split('/')
            .any(|c| c.is_empty() || c == "." || c == "..")
    {
        return Err(format!(
            "{field}: {p:?} is not normalised (no trailing '/', '//', '.' or '..')"
        ));
    }
    if p.contains(';') || p[1..].starts_with(' ') || p.chars().any(char::is_control) {
        return Err(format!(
            "{field}: {p:?} holds ';', a control character or a leading space"
        ));
    }
    Ok(())
}

/// A directory's exclusions: at most `max` subpaths relative to `base` and `max` file types
/// of 1 to 10 letters and digits. `field` is the directory's (`directories[2]`).
pub fn check_exclusions(
    field: &str,
    base: &str,
    exclude: &[String],
    types: &[String],
    max: usize,
) -> Result<(), String> {
    if exclude.len() > max {
        return Err(format!("{field}.exclude: at most {max} entries"));
    }
    for (j, x) in exclude.iter().enumerate() {
        if x.starts_with('/') {
            return Err(format!(
                "{field}.exclude[{j}]: {x:?} must be relative to {base}"
            ));
        }
        // Relative to the directory: checked as if it were below it.
        check_path(&format!("{field}.exclude[{j}]"), &format!("{base}/{x}"))?;
    }
    if types.len() > max {
        return Err(format!("{field}.exclude_types: at most {max} entries"));
    }
    if let Some((j, t)) = types.iter().enumerate().find(|(_, t)| {
        t.is_empty() || t.len() > 10 || !t.chars().all(|c| c.is_ascii_alphanumeric())
    }) {
        return Err(format!(
            "{field}.exclude_types[{j}]: {t:?} is not 1 to 10 letters and digits"
        ));
    }
    Ok(())
}

/// Whether `inner` is `outer` or below it (`/srv/www2` is not below `/srv/www`).
pub fn nested(outer: &str, inner: &str) -> bool {
    inner
        .strip_prefix(outer)
        .is_some_and(|r| r.is_empty() || r.starts_with('/'))
}

/// `path` relative to `base`: `Some("")` for `base` itself, None outside it.
pub fn relative<'a>(base: &str, path: &'a str) -> Option<&'a str> {
    match path.strip_prefix(base)? {
        "" => Some(""),
        r => r.strip_prefix('/'),
    }
}

/// Whether a path below a directory (`rel`, relative to it) is left out by its exclusions:
/// under an excluded subpath, or a name of an excluded type.
pub fn excluded(rel: &str, exclude: &[String], types: &[String]) -> bool {
    if exclude.iter().any(|x| nested(x, rel)) {
        return true;
    }
    let name = rel.rsplit('/').next().unwrap_or(rel);
    name.rsplit_once('.')
        .is_some_and(|(_, ext)| types.iter().any(|t| t.eq_ignore_ascii_case(ext)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_nesting_and_exclusions() {
        assert!(
            check_path("p", "/srv/ www").is_ok(),
            "a space inside a name is fine"
        );
        assert!(
            check_path("p", "/ srv")
                .unwrap_err()
                .contains("leading space")
        );
        assert!(nested("/srv/www", "/srv/www") && nested("/srv/www", "/srv/www/a"));
        assert!(!nested("/srv/www", "/srv/www2"));
        assert_eq!(relative("/srv/www", "/srv/www"), Some(""));
        assert_eq!(relative("/srv/www", "/srv/www/a/b"), Some("a/b"));
        assert_eq!(relative("/srv/www", "/srv/www2/a"), None);
        let ex = ["cache".to_string()];
        let ty = ["log".to_string()];
        assert!(excluded("cache/x", &ex, &ty) && excluded("a/b.LOG", &ex, &ty));
        assert!(!excluded("cachex", &ex, &ty) && !excluded("a/b.html", &ex, &ty));
    }
}
