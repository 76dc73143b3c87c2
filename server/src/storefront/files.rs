//! Where an embedded storefront's files come from: a folder on disk (`--storefront-dir`) or the
//! sample shop built into the binary. The loader reads and lists through `StorefrontFiles` only,
//! by relative paths with `/` between names; on disk, a file that a product file names must be a
//! regular file inside the product folder, never a link.

use std::borrow::Cow;
use std::path::{Component, Path, PathBuf};

use anyhow::ensure;
use bytes::Bytes;

/// `server/storefront/sample/` as it was at build time. `debug-embed` makes debug builds carry it
/// too (a copied binary must not read the source tree), and `build.rs` rebuilds the crate when a
/// file in it changes, appears or goes away.
#[derive(rust_embed::Embed)]
#[folder = "storefront/sample/"]
struct Sample;

/// A storefront's files.
#[derive(Debug, Clone)]
pub enum StorefrontFiles {
    /// A folder on disk.
    Folder(PathBuf),
    /// The sample shop built into the binary.
    BuiltInSample,
}

/// Folder depth walked below a folder being listed; storefront folders are shallow, and the
/// limit guards against link loops on disk.
const MAX_DEPTH: usize = 8;

impl StorefrontFiles {
    /// How errors name a file: its path on disk, or its place in the built-in sample.
    pub fn shown(&self, path: &str) -> String {
        match self {
            StorefrontFiles::Folder(root) => root.join(path).display().to_string(),
            StorefrontFiles::BuiltInSample => format!("(built-in sample storefront)/{path}"),
        }
    }

    /// A file's bytes; on disk, links are followed (the storefront's own files may be links).
    pub fn read(&self, path: &str) -> std::io::Result<Cow<'static, [u8]>> {
        match self {
            StorefrontFiles::Folder(root) => std::fs::read(root.join(path)).map(Cow::Owned),
            StorefrontFiles::BuiltInSample => Sample::get(path)
                .map(|file| file.data)
                .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, "no such file")),
        }
    }

    /// A file's bytes, off the async threads for a folder on disk.
    pub async fn read_async(&self, path: &str) -> std::io::Result<Bytes> {
        match self {
            StorefrontFiles::Folder(root) => tokio::fs::read(root.join(path)).await.map(Bytes::from),
            StorefrontFiles::BuiltInSample => Ok(match self.read(path)? {
                Cow::Borrowed(data) => Bytes::from_static(data),
                Cow::Owned(data) => Bytes::from(data),
            }),
        }
    }

    /// The size of a regular file; on disk, a link or a folder is refused (why, in words).
    fn regular_file(&self, path: &str) -> Result<u64, &'static str> {
        const MISSING: &str = "does not exist";
        match self {
            StorefrontFiles::Folder(root) => {
                let meta = std::fs::symlink_metadata(root.join(path)).map_err(|_| MISSING)?;
                if !meta.is_file() {
                    return Err("must be a regular file, not a link or folder");
                }
                Ok(meta.len())
            }
            StorefrontFiles::BuiltInSample => Sample::get(path).map(|file| file.data.len() as u64).ok_or(MISSING),
        }
    }

    /// Whether anything is at `path`.
    pub fn exists(&self, path: &str) -> bool {
        match self {
            StorefrontFiles::Folder(root) => root.join(path).exists(),
            StorefrontFiles::BuiltInSample => {
                Sample::iter().any(|file| file == path || inside_folder(&file, path).is_some())
            }
        }
    }

    /// The names of the folders directly in `path`, sorted.
    pub fn folders(&self, path: &str) -> std::io::Result<Vec<String>> {
        let mut names = match self {
            StorefrontFiles::Folder(root) => {
                let mut names = Vec::new();
                for entry in std::fs::read_dir(root.join(path))? {
                    let entry = entry?.path();
                    if entry.is_dir()
                        && let Some(name) = entry.file_name().and_then(|name| name.to_str())
                    {
                        names.push(name.to_owned());
                    }
                }
                names
            }
            StorefrontFiles::BuiltInSample => {
                let mut names: Vec<String> = Sample::iter()
                    .filter_map(|file| Some(inside_folder(&file, path)?.split_once('/')?.0.to_owned()))
                    .collect();
                names.dedup();
                names
            }
        };
        names.sort();
        names.dedup();
        Ok(names)
    }

    /// Every file below `path`, at any depth up to a limit, as paths from the storefront's root,
    /// sorted.
    pub fn files_below(&self, path: &str) -> std::io::Result<Vec<String>> {
        let mut files = Vec::new();
        match self {
            StorefrontFiles::Folder(root) => collect_files(root, Path::new(path), &mut files, 0)?,
            StorefrontFiles::BuiltInSample => {
                files = Sample::iter()
                    .filter(|file| inside_folder(file, path).is_some_and(|rest| rest.matches('/').count() <= MAX_DEPTH))
                    .map(|file| file.into_owned())
                    .collect();
                if files.is_empty() {
                    return Err(std::io::Error::new(std::io::ErrorKind::NotFound, "no such folder"));
                }
            }
        }
        // In path order (by name, folder by folder), whichever way the files were found.
        files.sort_by(|a, b| Path::new(a).cmp(Path::new(b)));
        Ok(files)
    }
}

/// What follows `folder/` in `file`, when the file lies inside that folder.
fn inside_folder<'a>(file: &'a str, folder: &str) -> Option<&'a str> {
    file.strip_prefix(folder)?.strip_prefix('/')
}

fn collect_files(root: &Path, dir: &Path, out: &mut Vec<String>, depth: usize) -> std::io::Result<()> {
    if depth > MAX_DEPTH {
        return Ok(());
    }
    for entry in std::fs::read_dir(root.join(dir))? {
        let name = entry?.file_name();
        let Some(name) = name.to_str() else { continue };
        let relative = dir.join(name);
        if root.join(&relative).is_dir() {
            collect_files(root, &relative, out, depth + 1)?;
        } else if let Some(relative) = relative.to_str() {
            out.push(relative.to_owned());
        }
    }
    Ok(())
}

/// The path and size of a file named in a product file, refusing anything that could leave the
/// product folder: a plain relative name, of a regular file (not a link or folder).
pub fn inside(files: &StorefrontFiles, folder: &str, name: &str) -> anyhow::Result<(String, u64)> {
    let plain = Path::new(name).components().all(|c| matches!(c, Component::Normal(_)));
    ensure!(plain && !name.is_empty(), "\"{name}\" must be a file name inside the product folder");
    let path = format!("{folder}/{name}");
    let size = files.regular_file(&path).map_err(|why| anyhow::anyhow!("\"{name}\" {why}"))?;
    Ok((path, size))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_sample_lists_and_reads_like_its_folder() {
        let folder = StorefrontFiles::Folder(Path::new(env!("CARGO_MANIFEST_DIR")).join("storefront/sample"));
        let built_in = StorefrontFiles::BuiltInSample;
        assert_eq!(built_in.folders("products").unwrap(), folder.folders("products").unwrap());
        assert_eq!(built_in.files_below("fonts").unwrap(), folder.files_below("fonts").unwrap());
        assert_eq!(built_in.read("storefront.toml").unwrap(), folder.read("storefront.toml").unwrap());
        assert!(built_in.exists("products/a4-flyer/pages") && built_in.exists("products/a4-flyer/pages/page-1.svg"));
        assert!(
            !built_in.exists("products/a4-flyer/nothing") && !built_in.exists("products/a4-flyer/pages/page-9.svg")
        );
        assert!(built_in.read("products/none.toml").is_err());
        assert!(built_in.files_below("nowhere").is_err());
        let (folder_name, document) = ("products/fire-action-notice", "document.pdf");
        assert_eq!(inside(&built_in, folder_name, document).unwrap(), inside(&folder, folder_name, document).unwrap());
    }

    #[test]
    fn a_named_file_must_stay_in_its_product_folder_and_not_be_a_link() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("products/card")).unwrap();
        std::fs::write(dir.path().join("secret.txt"), "x").unwrap();
        std::fs::write(dir.path().join("products/card/logo.png"), "x").unwrap();
        std::os::unix::fs::symlink(dir.path().join("secret.txt"), dir.path().join("products/card/link.png")).unwrap();
        let files = StorefrontFiles::Folder(dir.path().to_path_buf());
        assert_eq!(inside(&files, "products/card", "logo.png").unwrap(), ("products/card/logo.png".to_owned(), 1));
        for (name, why) in [
            ("../../secret.txt", "inside the product folder"),
            ("/etc/passwd", "inside the product folder"),
            ("", "inside the product folder"),
            ("link.png", "not a link"),
            ("missing.png", "does not exist"),
        ] {
            let err = inside(&files, "products/card", name).unwrap_err().to_string();
            assert!(err.contains(why), "{name}: {err}");
        }
    }
}
