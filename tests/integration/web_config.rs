//! `--web.config.file` end to end: a small hyper server wired through `WebConfig`'s public API
//! (TLS acceptor, `authorize_async`, extra headers) on 127.0.0.1:0, hit with reqwest over
//! rustls; plus the load errors. Fixtures and how they were made: `tests/data/web/README.md`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{AUTHORIZATION, HeaderValue, WWW_AUTHENTICATE};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use honcho_exporter::web_config::{self, AuthDecision, WebConfig};

const ALICE_PASSWORD: &str = "correct horse battery";

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/web")
        .join(name)
}

fn load(name: &str) -> WebConfig {
    WebConfig::load(&fixture(name)).unwrap_or_else(|error| panic!("{name} loads: {error}"))
}

/// A server on 127.0.0.1:0 that answers 200 `ok` through the web config, stopped on drop.
struct TestServer {
    address: SocketAddr,
    accept_loop: JoinHandle<()>,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.accept_loop.abort();
    }
}

async fn respond(
    config: Arc<WebConfig>,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let decision = config
        .authorize_async(request.headers().get(AUTHORIZATION))
        .await;
    let mut response = match decision {
        AuthDecision::Allowed => Response::new(Full::new(Bytes::from_static(b"ok"))),
        AuthDecision::Unauthorized => {
            let mut response = Response::new(Full::new(Bytes::from_static(b"Unauthorized\n")));
            *response.status_mut() = StatusCode::UNAUTHORIZED;
            response.headers_mut().insert(
                WWW_AUTHENTICATE,
                HeaderValue::from_static(web_config::WWW_AUTHENTICATE),
            );
            response
        }
    };
    for (name, value) in config.extra_headers() {
        response.headers_mut().insert(name.clone(), value.clone());
    }
    Ok(response)
}

async fn serve(config: WebConfig) -> TestServer {
    let config = Arc::new(config);
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let address = listener.local_addr().expect("bound address");
    let accept_loop = tokio::spawn(async move {
        let mut connections = tokio::task::JoinSet::new();
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let config = Arc::clone(&config);
            connections.spawn(async move {
                let service = {
                    let config = Arc::clone(&config);
                    service_fn(move |request| respond(Arc::clone(&config), request))
                };
                let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                match config.tls_acceptor() {
                    Some(acceptor) => {
                        // A failed handshake (plain HTTP, untrusted client) just drops the connection.
                        if let Ok(stream) = acceptor.accept(stream).await {
                            let _ = builder
                                .serve_connection(TokioIo::new(stream), service)
                                .await;
                        }
                    }
                    None => {
                        let _ = builder
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    }
                }
            });
        }
    });
    TestServer {
        address,
        accept_loop,
    }
}

fn certificates(name: &str) -> Vec<CertificateDer<'static>> {
    CertificateDer::pem_file_iter(fixture(name))
        .expect("readable PEM")
        .collect::<Result<_, _>>()
        .expect("valid PEM")
}

/// A reqwest client trusting only the test CA, optionally presenting the test client certificate.
fn tls_client(with_client_certificate: bool) -> reqwest::Client {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for certificate in certificates("ca.crt") {
        roots.add(certificate).expect("usable CA");
    }
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring supports the default versions")
        .with_root_certificates(roots);
    let config = if with_client_certificate {
        let key = PrivateKeyDer::from_pem_file(fixture("client.key")).expect("client key");
        builder
            .with_client_auth_cert(certificates("client.crt"), key)
            .expect("client certificate and key match")
    } else {
        builder.with_no_client_auth()
    };
    reqwest::Client::builder()
        .tls_backend_preconfigured(config)
        .build()
        .expect("client builds")
}

/// A client with rustls' defaults and no extra trust: for plain HTTP and for "untrusted CA".
fn default_client() -> reqwest::Client {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring supports the default versions")
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    reqwest::Client::builder()
        .tls_backend_preconfigured(config)
        .build()
        .expect("client builds")
}

#[tokio::test]
async fn right_password_is_allowed() {
    let server = serve(load("basic-auth.yml")).await;
    let response = default_client()
        .get(format!("http://{}/metrics", server.address))
        .basic_auth("alice", Some(ALICE_PASSWORD))
        .send()
        .await
        .expect("request completes");
    assert_eq!(response.status(), StatusCode::OK);
    // Once verified, the credentials come from the cache: a second request is allowed too.
    let again = default_client()
        .get(format!("http://{}/metrics", server.address))
        .basic_auth("alice", Some(ALICE_PASSWORD))
        .send()
        .await
        .expect("request completes");
    assert_eq!(again.status(), StatusCode::OK);
}

#[tokio::test]
async fn wrong_password_is_unauthorized() {
    let server = serve(load("basic-auth.yml")).await;
    for (user, password) in [
        ("alice", "wrong"),
        ("bob", ALICE_PASSWORD),
        ("mallory", ALICE_PASSWORD),
    ] {
        let response = default_client()
            .get(format!("http://{}/metrics", server.address))
            .basic_auth(user, Some(password))
            .send()
            .await
            .expect("request completes");
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{user}");
    }
}

#[tokio::test]
async fn missing_credentials_get_401_with_basic_challenge() {
    let server = serve(load("basic-auth.yml")).await;
    let response = default_client()
        .get(format!("http://{}/metrics", server.address))
        .send()
        .await
        .expect("request completes");
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        response
            .headers()
            .get(WWW_AUTHENTICATE)
            .map(HeaderValue::as_bytes),
        Some(&b"Basic realm=\"honcho_exporter\""[..])
    );
}

#[test]
fn no_users_means_everyone_is_allowed() {
    let config = load("tls.yml");
    assert!(!config.requires_auth());
    assert_eq!(config.authorize(None), AuthDecision::Allowed);
}

#[test]
fn authorize_checks_the_header_without_a_server() {
    let config = load("basic-auth.yml");
    let header = |user: &str, password: &str| {
        use base64::Engine as _;
        let encoded =
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        HeaderValue::from_str(&format!("Basic {encoded}")).expect("valid header")
    };
    assert_eq!(
        config.authorize(Some(&header("bob", "s3cond-Passw0rd"))),
        AuthDecision::Allowed
    );
    assert_eq!(
        config.authorize(Some(&header("bob", "s3cond-passw0rd"))),
        AuthDecision::Unauthorized
    );
    assert_eq!(config.authorize(None), AuthDecision::Unauthorized);
}

#[tokio::test]
async fn tls_handshake_succeeds_with_the_test_ca_trusted_and_sends_extra_headers() {
    let server = serve(load("tls.yml")).await;
    let response = tls_client(false)
        .get(format!(
            "https://localhost:{}/metrics",
            server.address.port()
        ))
        .send()
        .await
        .expect("TLS request completes");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response
            .headers()
            .get("x-content-type-options")
            .map(HeaderValue::as_bytes),
        Some(&b"nosniff"[..])
    );
    assert_eq!(
        response
            .headers()
            .get("strict-transport-security")
            .map(HeaderValue::as_bytes),
        Some(&b"max-age=31536000"[..])
    );
    assert_eq!(response.text().await.expect("body"), "ok");
}

#[tokio::test]
async fn tls_and_basic_auth_combine() {
    let server = serve(load("tls-basic-auth.yml")).await;
    let url = format!("https://127.0.0.1:{}/metrics", server.address.port());
    let anonymous = tls_client(false)
        .get(&url)
        .send()
        .await
        .expect("request completes");
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    let alice = tls_client(false)
        .get(&url)
        .basic_auth("alice", Some(ALICE_PASSWORD))
        .send()
        .await
        .expect("request completes");
    assert_eq!(alice.status(), StatusCode::OK);
}

#[tokio::test]
async fn plain_http_to_a_tls_port_fails() {
    let server = serve(load("tls.yml")).await;
    let result = default_client()
        .get(format!("http://{}/metrics", server.address))
        .send()
        .await;
    assert!(result.is_err(), "plain HTTP got an answer: {result:?}");
}

#[tokio::test]
async fn untrusted_server_certificate_fails_the_handshake() {
    let server = serve(load("tls.yml")).await;
    let result = default_client()
        .get(format!(
            "https://localhost:{}/metrics",
            server.address.port()
        ))
        .send()
        .await;
    assert!(
        result.is_err(),
        "untrusted certificate accepted: {result:?}"
    );
}

#[tokio::test]
async fn client_certificate_is_required_when_configured() {
    let server = serve(load("mtls.yml")).await;
    let url = format!("https://localhost:{}/metrics", server.address.port());
    let with_certificate = tls_client(true)
        .get(&url)
        .send()
        .await
        .expect("mTLS request completes");
    assert_eq!(with_certificate.status(), StatusCode::OK);
    let without = tls_client(false).get(&url).send().await;
    assert!(
        without.is_err(),
        "no client certificate but got: {without:?}"
    );
}

#[test]
fn bad_web_config_files_are_rejected_with_the_key_and_problem() {
    let bad = |name: &str| fixture("bad").join(name);
    let cases: &[(&str, String)] = &[
        (
            "unknown-key.yml",
            format!(
                "web config file {}: tls_server_config.cert_fil: unknown key (did you mean cert_file?)",
                bad("unknown-key.yml").display()
            ),
        ),
        (
            "top-level-typo.yml",
            format!(
                "web config file {}: basic_auth_user: unknown key (did you mean basic_auth_users?)",
                bad("top-level-typo.yml").display()
            ),
        ),
        (
            "missing-cert-file.yml",
            format!(
                "cannot read tls_server_config.cert_file {}: No such file or directory (os error 2)",
                fixture("bad").join("does-not-exist.crt").display()
            ),
        ),
        (
            "cipher-suites.yml",
            format!(
                "web config file {}: tls_server_config.cipher_suites: is not supported by honcho_exporter",
                bad("cipher-suites.yml").display()
            ),
        ),
        (
            "not-a-hash.yml",
            format!(
                "web config file {}: basic_auth_users.alice: is not a bcrypt hash",
                bad("not-a-hash.yml").display()
            ),
        ),
        (
            "header.yml",
            format!(
                "web config file {}: http_server_config.headers.X-Powered-By: this header cannot be configured",
                bad("header.yml").display()
            ),
        ),
        (
            "tls10.yml",
            format!(
                "web config file {}: tls_server_config.min_version: TLS10 is not supported",
                bad("tls10.yml").display()
            ),
        ),
        (
            "key-mismatch.yml",
            format!(
                "web config file {}: tls_server_config.key_file: certificate and key unusable together",
                bad("key-mismatch.yml").display()
            ),
        ),
        (
            "require-client-cert-without-ca.yml",
            format!(
                "web config file {}: tls_server_config.client_ca_file: missing",
                bad("require-client-cert-without-ca.yml").display()
            ),
        ),
    ];
    for (name, expected_start) in cases {
        let error = WebConfig::load(&bad(name)).expect_err(name).to_string();
        assert!(
            error.starts_with(expected_start.as_str()),
            "{name}:\n  got      {error}\n  expected {expected_start}…"
        );
        assert!(
            !error.contains("correct horse"),
            "{name} leaks a password: {error}"
        );
    }
}

#[test]
fn missing_web_config_file_names_the_path() {
    let path = fixture("no-such-web-config.yml");
    let error = WebConfig::load(&path)
        .expect_err("missing file")
        .to_string();
    assert_eq!(
        error,
        format!(
            "cannot read web config file {}: No such file or directory (os error 2)",
            path.display()
        )
    );
}
