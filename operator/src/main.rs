//! `dhcpair-operator`: the Kubernetes operator (CRDs `FailoverPeer` and `Pool`, rendering of
//! per-node server configs, status). A placeholder until the Kubernetes milestone; the server's
//! config schema it will render lives in `server/config`.

fn main() {
    eprintln!("dhcpair-operator: not implemented yet (see the Kubernetes issue)");
    std::process::exit(2);
}
