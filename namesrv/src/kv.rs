//! KV config (PUT/GET/DELETE_KV_CONFIG), persisted as `kvConfig.json`
//! (`{"configTable":{namespace:{key:value}}}`) when a path is configured.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

#[derive(Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct KvFile {
    #[serde(default)]
    config_table: BTreeMap<String, BTreeMap<String, String>>,
}

pub struct KvStore {
    path: Option<PathBuf>,
    table: BTreeMap<String, BTreeMap<String, String>>,
}

impl KvStore {
    pub fn load(path: Option<PathBuf>) -> Self {
        let table = path
            .as_ref()
            .and_then(|p| match std::fs::read(p) {
                Ok(bytes) => match serde_json::from_slice::<KvFile>(&bytes) {
                    Ok(file) => Some(file.config_table),
                    Err(e) => {
                        tracing::error!(path = %p.display(), error = %e, "kv config unreadable; starting empty");
                        None
                    }
                },
                Err(_) => None,
            })
            .unwrap_or_default();
        Self { path, table }
    }

    pub fn put(&mut self, namespace: &str, key: &str, value: &str) {
        self.table
            .entry(namespace.to_owned())
            .or_default()
            .insert(key.to_owned(), value.to_owned());
        self.persist();
    }

    pub fn get(&self, namespace: &str, key: &str) -> Option<String> {
        self.table.get(namespace)?.get(key).cloned()
    }

    pub fn delete(&mut self, namespace: &str, key: &str) {
        if let Some(ns) = self.table.get_mut(namespace) {
            ns.remove(key);
            if ns.is_empty() {
                self.table.remove(namespace);
            }
        }
        self.persist();
    }

    pub fn namespace(&self, namespace: &str) -> Option<BTreeMap<String, String>> {
        self.table.get(namespace).cloned()
    }

    /// Writes to a temporary file and renames it over the old one, so a
    /// crash leaves either the old or the new table.
    fn persist(&self) {
        let Some(path) = &self.path else { return };
        let file = KvFile {
            config_table: self.table.clone(),
        };
        let result = (|| -> std::io::Result<()> {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let tmp = path.with_extension("json.tmp");
            std::fs::write(&tmp, serde_json::to_vec_pretty(&file).unwrap_or_default())?;
            std::fs::rename(&tmp, path)
        })();
        if let Err(e) = result {
            tracing::error!(path = %path.display(), error = %e, "cannot persist kv config");
        }
    }
}
