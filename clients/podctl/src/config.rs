//! Where podctl's settings come from: flags and `PODCTL_*` variables over the chosen profile of
//! the config file; and the session file, which carries a session across podctl processes
//! (0600 in a 0700 folder, since the token is a secret).

use std::collections::BTreeMap;
use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use podconnect_client::{Client, Secret};
use serde::Deserialize;

use crate::Global;

/// The config file: named profiles and which one is the default.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ConfigFile {
    /// The profile used when `--profile` is not given.
    default: Option<String>,
    #[serde(default)]
    profile: BTreeMap<String, Profile>,
}

/// One profile: how to reach one core and with which credentials.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Profile {
    pub(crate) endpoint: Option<String>,
    pub(crate) ca: Option<PathBuf>,
    pub(crate) server_name: Option<String>,
    pub(crate) cert: Option<PathBuf>,
    pub(crate) key: Option<PathBuf>,
    pub(crate) operator_token_file: Option<PathBuf>,
    pub(crate) device: Option<String>,
    pub(crate) session_file: Option<PathBuf>,
    pub(crate) gateway: Option<String>,
}

/// Settings resolved once: flags win over the profile.
pub(crate) struct Settings {
    pub(crate) profile_name: String,
    pub(crate) endpoint: String,
    pub(crate) ca: Option<PathBuf>,
    pub(crate) server_name: Option<String>,
    pub(crate) identity: Option<(PathBuf, PathBuf)>,
    pub(crate) operator_token_file: Option<PathBuf>,
    pub(crate) device: Option<String>,
    pub(crate) session_file: PathBuf,
    pub(crate) gateway: Option<String>,
}

fn home_dir(var: &str, fallback: &str) -> Option<PathBuf> {
    match std::env::var_os(var) {
        Some(dir) if !dir.is_empty() => Some(PathBuf::from(dir)),
        _ => std::env::var_os("HOME").map(|home| PathBuf::from(home).join(fallback)),
    }
}

/// The default config file: `$XDG_CONFIG_HOME/podctl/config.toml` (`~/.config/...`).
pub(crate) fn default_config_path() -> Option<PathBuf> {
    home_dir("XDG_CONFIG_HOME", ".config").map(|dir| dir.join("podctl").join("config.toml"))
}

impl Settings {
    pub(crate) fn resolve(global: &Global) -> anyhow::Result<Settings> {
        let file = match &global.config {
            Some(path) => Some(load(path)?),
            None => match default_config_path() {
                Some(path) if path.exists() => Some(load(&path)?),
                _ => None,
            },
        }
        .unwrap_or_default();
        let profile_name = global.profile.clone().or(file.default.clone()).unwrap_or_else(|| "default".into());
        let profile = match file.profile.get(&profile_name) {
            Some(profile) => profile.clone(),
            None if global.profile.is_some() => anyhow::bail!("no profile {profile_name:?} in the config file"),
            None => Profile::default(),
        };
        let endpoint = global.endpoint.clone().or(profile.endpoint).unwrap_or_else(|| "https://127.0.0.1:50443".into());
        let cert = global.cert.clone().or(profile.cert);
        let key = global.key.clone().or(profile.key);
        let identity = match (cert, key) {
            (Some(cert), Some(key)) => Some((cert, key)),
            (None, None) => None,
            _ => anyhow::bail!("a client certificate needs both --cert and --key"),
        };
        let session_file = match global.session_file.clone().or(profile.session_file) {
            Some(file) => file,
            None => home_dir("XDG_STATE_HOME", ".local/state")
                .context("cannot tell where to keep the session: set HOME or --session-file")?
                .join("podctl")
                .join(format!("{profile_name}.session")),
        };
        Ok(Settings {
            profile_name,
            endpoint,
            ca: global.ca.clone().or(profile.ca),
            server_name: global.server_name.clone().or(profile.server_name),
            identity,
            operator_token_file: global.operator_token_file.clone().or(profile.operator_token_file),
            device: global.device.clone().or(profile.device),
            session_file,
            gateway: profile.gateway,
        })
    }

    /// A client for these settings, connected lazily (the first call reports a wrong endpoint).
    pub(crate) fn client(&self) -> anyhow::Result<Client> {
        let mut builder = Client::builder(&self.endpoint).user_agent(concat!("podctl/", env!("CARGO_PKG_VERSION")));
        if let Some(ca) = &self.ca {
            builder = builder.ca_file(ca);
        }
        if let Some(name) = &self.server_name {
            builder = builder.server_name(name);
        }
        if let Some((cert, key)) = &self.identity {
            builder = builder.client_certificate(cert, key);
        }
        builder = match &self.operator_token_file {
            Some(file) => builder.operator_token_file(file),
            None => builder.operator_token_from_env(),
        };
        Ok(builder.connect_lazy()?)
    }

    /// The saved session's token, when there is one.
    pub(crate) fn saved_session(&self) -> anyhow::Result<Option<Secret>> {
        match std::fs::read_to_string(&self.session_file) {
            Ok(text) if !text.trim().is_empty() => Ok(Some(Secret::new(text.trim()))),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("cannot read the session file {}", self.session_file.display())),
        }
    }

    /// Saves the session's token, readable only by this user.
    pub(crate) fn save_session(&self, token: &Secret) -> anyhow::Result<()> {
        let path = &self.session_file;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
            // Only the folder podctl made for itself is narrowed; a folder the user chose is theirs.
            if global_state_dir(dir) {
                std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
            }
        }
        let temp = path.with_extension("session.tmp");
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&temp)
            .with_context(|| format!("cannot write the session file {}", temp.display()))?;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        writeln!(file, "{}", token.expose())?;
        file.sync_all()?;
        std::fs::rename(&temp, path).with_context(|| format!("cannot write the session file {}", path.display()))?;
        Ok(())
    }

    pub(crate) fn forget_session(&self) -> anyhow::Result<()> {
        match std::fs::remove_file(&self.session_file) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        }
    }
}

fn global_state_dir(dir: &Path) -> bool {
    dir.file_name().is_some_and(|name| name == "podctl")
}

fn load(path: &Path) -> anyhow::Result<ConfigFile> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read the config file {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("the config file {} is not valid", path.display()))
}
