//! Reading CRs and node facts from files, for `dhcpair-operator render` and the tests.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use serde::Deserialize;

use crate::api::{FailoverPeer, Pool};
use crate::render::NodeFacts;

/// A file that could not be read as CRs or node facts.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("{file}: document {index}: {message}")]
    Document {
        file: String,
        index: usize,
        message: String,
    },
}

/// The FailoverPeers and Pools of a multi-document YAML text; other kinds are skipped.
#[derive(Debug, Clone, Default)]
pub struct Resources {
    pub peers: Vec<FailoverPeer>,
    pub pools: Vec<Pool>,
}

impl Resources {
    /// Add every FailoverPeer and Pool of `text`; `file` names it in errors.
    pub fn add_yaml(&mut self, file: &str, text: &str) -> Result<(), InputError> {
        for (index, doc) in serde_yaml::Deserializer::from_str(text).enumerate() {
            let err = |message: String| InputError::Document {
                file: file.to_string(),
                index,
                message,
            };
            let value = serde_yaml::Value::deserialize(doc).map_err(|e| err(e.to_string()))?;
            if value.is_null() {
                continue;
            }
            match value.get("kind").and_then(|k| k.as_str()) {
                Some("FailoverPeer") => self
                    .peers
                    .push(serde_yaml::from_value(value).map_err(|e| err(e.to_string()))?),
                Some("Pool") => self
                    .pools
                    .push(serde_yaml::from_value(value).map_err(|e| err(e.to_string()))?),
                _ => {}
            }
        }
        Ok(())
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct NodeFile {
    name: String,
    #[serde(rename = "internalIP", default)]
    internal_ip: Option<Ipv4Addr>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
}

/// Node facts from YAML: a list of `{name, internalIP, labels}`.
pub fn nodes_from_yaml(file: &str, text: &str) -> Result<Vec<NodeFacts>, InputError> {
    let nodes: Vec<NodeFile> = serde_yaml::from_str(text).map_err(|e| InputError::Document {
        file: file.to_string(),
        index: 0,
        message: e.to_string(),
    })?;
    Ok(nodes
        .into_iter()
        .map(|n| NodeFacts {
            name: n.name,
            internal_ip: n.internal_ip,
            labels: n.labels,
        })
        .collect())
}

/// The rendered objects of every node as one multi-document YAML text (ConfigMap, then
/// StatefulSet, node by node).
pub fn objects_yaml(rendered: &crate::render::Rendered) -> Result<String, serde_yaml::Error> {
    let mut out = String::new();
    for n in &rendered.nodes {
        for text in [
            serde_yaml::to_string(&with_type(&n.config_map, "v1", "ConfigMap")?)?,
            serde_yaml::to_string(&with_type(&n.stateful_set, "apps/v1", "StatefulSet")?)?,
        ] {
            out.push_str("---\n");
            out.push_str(&text);
        }
    }
    Ok(out)
}

/// k8s-openapi's types leave apiVersion/kind out of their Serialize; put them first.
fn with_type<T: serde::Serialize>(
    obj: &T,
    api_version: &str,
    kind: &str,
) -> Result<serde_yaml::Mapping, serde_yaml::Error> {
    let mut m = serde_yaml::Mapping::new();
    m.insert("apiVersion".into(), api_version.into());
    m.insert("kind".into(), kind.into());
    if let serde_yaml::Value::Mapping(body) = serde_yaml::to_value(obj)? {
        for (k, v) in body {
            if k.as_str() != Some("apiVersion") && k.as_str() != Some("kind") {
                m.insert(k, v);
            }
        }
    }
    Ok(m)
}
