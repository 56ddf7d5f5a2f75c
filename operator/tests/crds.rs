//! The checked-in CRD YAML (crds/ and the chart's crds/) is exactly what `crdgen` writes.

// Test helpers may panic on fixtures they control (clippy.toml only covers #[test] fns).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

#[test]
fn checked_in_crds_match_the_rust_types() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for (name, text) in dhcpair_operator::crdgen::render_crds().unwrap() {
        for dir in ["crds", "charts/dhcpair/crds"] {
            let path = root.join(dir).join(name);
            let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
            assert!(
                on_disk.as_bytes() == text.as_bytes(),
                "{} drifted from operator/src/api.rs; run `cargo run -p dhcpair-operator -- crdgen --out crds && cp crds/*.yaml charts/dhcpair/crds/`",
                path.display()
            );
        }
    }
}

#[test]
fn crds_carry_the_cel_rules_and_printer_columns() {
    let all: String = dhcpair_operator::crdgen::render_crds()
        .unwrap()
        .into_iter()
        .map(|(_, t)| t)
        .collect();
    for needle in [
        "!(has(self.split) && has(self.hba))",
        "has(self.nodeName) != has(self.nodeSelector)",
        "has(self.hardwareAddress) != has(self.clientId)",
        "name: PRIMARY-STATE",
        "name: SECONDARY-NODE",
        "name: FREE",
        "name: BACKUP",
        "subresources:",
    ] {
        assert!(all.contains(needle), "CRDs lack {needle:?}");
    }
}
