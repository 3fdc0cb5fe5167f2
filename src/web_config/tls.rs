//! `tls_server_config`: the certificate and key, client certificate verification and the TLS
//! versions, built into a rustls server configuration (ring provider) at load, so a bad
//! certificate fails start-up rather than the first handshake. Keys rustls cannot honour are
//! rejected, not ignored (see the module docs of [`super`]).

use std::collections::BTreeMap;
use std::sync::Arc;

use rustls::RootCertStore;
use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::ClientCertVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

use crate::yaml::Node;

use super::WebConfigError;
use super::loader::Loader;

/// The keys of one `tls_server_config` section, removed as they are read.
type Section = BTreeMap<String, Node>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ClientAuth {
    None,
    VerifyIfGiven,
    Require,
}

const TLS_KEYS: [&str; 13] = [
    "cert",
    "key",
    "cert_file",
    "key_file",
    "client_auth_type",
    "client_ca",
    "client_ca_file",
    "client_allowed_sans",
    "min_version",
    "max_version",
    "cipher_suites",
    "prefer_server_cipher_suites",
    "curve_preferences",
];

/// The server's certificate chain and private key, with the key's setting name for errors.
struct Identity {
    key_key: String,
    certificates: Vec<CertificateDer<'static>>,
    private_key: PrivateKeyDer<'static>,
}

/// Validates `tls_server_config` and builds the acceptor; `http2` decides the ALPN offer. The
/// steps run in this order, so the first problem in the file is the one reported.
pub(super) fn load_tls_server_config(
    loader: &Loader<'_>,
    node: Node,
    http2: bool,
) -> Result<TlsAcceptor, WebConfigError> {
    let mut section = loader.mapping("tls_server_config", node)?;
    reject_unsupported(loader, &mut section)?;
    let identity = load_identity(loader, &mut section)?;
    let client_auth = client_auth_type(loader, &mut section)?;
    let client_ca = loader.pem_source(&mut section, "client_ca", "client_ca_file")?;
    let versions = protocol_versions(loader, &mut section)?;

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(&versions)
        .map_err(|error| loader.invalid("tls_server_config.min_version", error.to_string()))?;
    let builder = match client_verifier(loader, client_auth, client_ca, provider)? {
        None => builder.with_no_client_auth(),
        Some(verifier) => builder.with_client_cert_verifier(verifier),
    };
    let mut server_config = builder
        .with_single_cert(identity.certificates, identity.private_key)
        .map_err(|error| {
            loader.invalid(
                &identity.key_key,
                format!("certificate and key unusable together: {error}"),
            )
        })?;
    server_config.alpn_protocols = if http2 {
        vec![b"h2".to_vec(), b"http/1.1".to_vec()]
    } else {
        vec![b"http/1.1".to_vec()]
    };
    Ok(TlsAcceptor::from(Arc::new(server_config)))
}

/// Unknown keys and the restrictions rustls cannot honour are errors; an empty list of them is
/// accepted, `prefer_server_cipher_suites` is ignored with a warning.
fn reject_unsupported(loader: &Loader<'_>, section: &mut Section) -> Result<(), WebConfigError> {
    if let Some(key) = section.keys().find(|key| !TLS_KEYS.contains(&key.as_str())) {
        return Err(loader.unknown(&format!("tls_server_config.{key}"), &TLS_KEYS));
    }
    for unsupported in ["cipher_suites", "curve_preferences", "client_allowed_sans"] {
        let key = format!("tls_server_config.{unsupported}");
        match section.remove(unsupported) {
            None | Some(Node::Null) => {}
            Some(Node::List(items)) if items.is_empty() => {}
            Some(_) => {
                return Err(loader.invalid(
                    &key,
                    "is not supported by honcho_exporter (rustls offers only its own safe \
                     cipher suites and curves, and does not match client SANs); remove it",
                ));
            }
        }
    }
    if let Some(node) = section.remove("prefer_server_cipher_suites") {
        loader.boolean("tls_server_config.prefer_server_cipher_suites", node)?;
        tracing::warn!(
            file = %loader.path.display(),
            "tls_server_config.prefer_server_cipher_suites is ignored: rustls always prefers the server's order"
        );
    }
    Ok(())
}

/// The certificate chain and private key (inline or from files), both required.
fn load_identity(loader: &Loader<'_>, section: &mut Section) -> Result<Identity, WebConfigError> {
    let (cert_key, cert_pem) = loader
        .pem_source(section, "cert", "cert_file")?
        .ok_or_else(|| {
            loader.invalid(
                "tls_server_config.cert_file",
                "missing: TLS needs a certificate",
            )
        })?;
    let (key_key, key_pem) = loader
        .pem_source(section, "key", "key_file")?
        .ok_or_else(|| {
            loader.invalid(
                "tls_server_config.key_file",
                "missing: TLS needs a private key",
            )
        })?;
    let certificates = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| loader.invalid(&cert_key, format!("invalid PEM: {error}")))?;
    if certificates.is_empty() {
        return Err(loader.invalid(&cert_key, "contains no PEM certificate"));
    }
    let private_key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|_| {
        loader.invalid(
            &key_key,
            "contains no PEM private key (PKCS#8, PKCS#1 or SEC1)",
        )
    })?;
    Ok(Identity {
        key_key,
        certificates,
        private_key,
    })
}

/// `client_auth_type`: only the modes that verify a given certificate are supported.
fn client_auth_type(
    loader: &Loader<'_>,
    section: &mut Section,
) -> Result<ClientAuth, WebConfigError> {
    let Some(node) = section.remove("client_auth_type") else {
        return Ok(ClientAuth::None);
    };
    match loader
        .scalar("tls_server_config.client_auth_type", node)?
        .as_deref()
    {
        None | Some("NoClientCert") => Ok(ClientAuth::None),
        Some("VerifyClientCertIfGiven") => Ok(ClientAuth::VerifyIfGiven),
        Some("RequireAndVerifyClientCert") => Ok(ClientAuth::Require),
        Some(insecure @ ("RequestClientCert" | "RequireAnyClientCert")) => Err(loader.invalid(
            "tls_server_config.client_auth_type",
            format!(
                "{insecure} accepts unverified certificates and is not supported; use \
                 RequireAndVerifyClientCert"
            ),
        )),
        Some(other) => Err(loader.invalid(
            "tls_server_config.client_auth_type",
            format!(
                "unknown value {other:?}; expected NoClientCert, \
                 VerifyClientCertIfGiven or RequireAndVerifyClientCert"
            ),
        )),
    }
}

/// The TLS versions from `min_version` to `max_version` (default: 1.2 to 1.3).
fn protocol_versions(
    loader: &Loader<'_>,
    section: &mut Section,
) -> Result<Vec<&'static rustls::SupportedProtocolVersion>, WebConfigError> {
    let min_version = tls_version(loader, section, "min_version")?.unwrap_or(12);
    let max_version = tls_version(loader, section, "max_version")?.unwrap_or(13);
    if min_version > max_version {
        return Err(loader.invalid(
            "tls_server_config.min_version",
            "must not be higher than max_version",
        ));
    }
    Ok(
        [(12, &rustls::version::TLS12), (13, &rustls::version::TLS13)]
            .into_iter()
            .filter(|(number, _)| (min_version..=max_version).contains(number))
            .map(|(_, version)| version)
            .collect(),
    )
}

/// The client certificate verifier for `mode` against the CA from `client_ca`; `None` when
/// client certificates are not asked for.
fn client_verifier(
    loader: &Loader<'_>,
    mode: ClientAuth,
    client_ca: Option<(String, Vec<u8>)>,
    provider: Arc<CryptoProvider>,
) -> Result<Option<Arc<dyn ClientCertVerifier>>, WebConfigError> {
    let (ca_key, ca_pem) = match (mode, client_ca) {
        (ClientAuth::None, _) => return Ok(None),
        (_, None) => {
            return Err(loader.invalid(
                "tls_server_config.client_ca_file",
                "missing: verifying client certificates needs the CA that signs them",
            ));
        }
        (_, Some(ca)) => ca,
    };
    let mut roots = RootCertStore::empty();
    for certificate in CertificateDer::pem_slice_iter(&ca_pem) {
        let certificate = certificate
            .map_err(|error| loader.invalid(&ca_key, format!("invalid PEM: {error}")))?;
        roots.add(certificate).map_err(|error| {
            loader.invalid(&ca_key, format!("unusable CA certificate: {error}"))
        })?;
    }
    if roots.is_empty() {
        return Err(loader.invalid(&ca_key, "contains no PEM certificate"));
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
    let verifier = if mode == ClientAuth::VerifyIfGiven {
        verifier.allow_unauthenticated()
    } else {
        verifier
    };
    verifier
        .build()
        .map(Some)
        .map_err(|error| loader.invalid(&ca_key, format!("unusable CA: {error}")))
}

/// `TLS12` → 12, `TLS13` → 13.
fn tls_version(
    loader: &Loader<'_>,
    section: &mut Section,
    name: &str,
) -> Result<Option<u8>, WebConfigError> {
    let key = format!("tls_server_config.{name}");
    let Some(node) = section.remove(name) else {
        return Ok(None);
    };
    match loader.scalar(&key, node)?.as_deref() {
        None => Ok(None),
        Some("TLS12") => Ok(Some(12)),
        Some("TLS13") => Ok(Some(13)),
        Some(old @ ("TLS10" | "TLS11")) => Err(loader.invalid(
            &key,
            format!(
                "{old} is not supported (rustls speaks TLS 1.2 and 1.3 only); use TLS12 or TLS13"
            ),
        )),
        Some(other) => Err(loader.invalid(
            &key,
            format!("unknown TLS version {other:?}; expected TLS12 or TLS13"),
        )),
    }
}
