//! Device-user assertion benchmarks (`cargo bench -p server --bench jwks`): a JWKS refresh
//! (parsing a three-key set, EdDSA, ES256 and RS256, into a `KeySet`) and one assertion check per
//! algorithm against that set.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use criterion::{Criterion, criterion_group, criterion_main};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rustls::pki_types::PrivatePkcs1KeyDer;
use rustls::pki_types::pem::PemObject as _;
use serde_json::{Value, json};
use server::domain::clock::SystemClock;
use server::identity::jwks::{KeySet, KeySource};
use server::identity::verifier::JwtVerifier;

const ISSUER: &str = "https://idp.example";
const AUDIENCE: &str = "podconnect-bench";
const RSA_PEM: &str = include_str!("../src/identity/testdata/rs256-test-key.pem");

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A signing key, its algorithm and kid, and its public JWK.
struct Signer {
    name: &'static str,
    alg: Algorithm,
    key: EncodingKey,
    jwk: Value,
}

fn signers() -> Vec<Signer> {
    let ed = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).expect("an Ed25519 key");
    let es = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("a P-256 key");
    let point = es.public_key_raw();
    // RSAPrivateKey ::= SEQUENCE { version, modulus, publicExponent, ... }
    let der = PrivatePkcs1KeyDer::from_pem_slice(RSA_PEM.as_bytes()).expect("a PKCS#1 PEM key");
    let (_, rsa) = x509_parser::der_parser::parse_der(der.secret_pkcs1_der()).expect("DER");
    let fields = rsa.as_sequence().expect("an RSAPrivateKey sequence");
    let unsigned = |index: usize| {
        let bytes = fields[index].as_slice().expect("an integer");
        let first = bytes.iter().position(|&byte| byte != 0).unwrap_or(bytes.len());
        b64(&bytes[first..])
    };
    vec![
        Signer {
            name: "EdDSA",
            alg: Algorithm::EdDSA,
            key: EncodingKey::from_ed_der(&ed.serialize_der()),
            jwk: json!({"kty": "OKP", "crv": "Ed25519", "x": b64(ed.public_key_raw()), "kid": "ed-1", "use": "sig"}),
        },
        Signer {
            name: "ES256",
            alg: Algorithm::ES256,
            key: EncodingKey::from_ec_der(&es.serialize_der()),
            jwk: json!({"kty": "EC", "crv": "P-256", "x": b64(&point[1..33]), "y": b64(&point[33..]), "kid": "es-1"}),
        },
        Signer {
            name: "RS256",
            alg: Algorithm::RS256,
            key: EncodingKey::from_rsa_der(der.secret_pkcs1_der()),
            jwk: json!({"kty": "RSA", "n": unsigned(1), "e": unsigned(2), "kid": "rs-1", "alg": "RS256"}),
        },
    ]
}

fn assertion(signer: &Signer) -> String {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).expect("after 1970").as_secs();
    let claims =
        json!({"iss": ISSUER, "aud": AUDIENCE, "sub": "alice@example", "iat": now, "nbf": now, "exp": now + 86_400});
    let mut header = Header::new(signer.alg);
    header.kid = signer.jwk["kid"].as_str().map(str::to_owned);
    jsonwebtoken::encode(&header, &claims, &signer.key).expect("the key signs")
}

fn bench(c: &mut Criterion) {
    let signers = signers();
    let jwks =
        serde_json::to_vec(&json!({"keys": signers.iter().map(|s| s.jwk.clone()).collect::<Vec<_>>()})).expect("JSON");

    c.bench_function("jwks refresh: parse 3 keys (EdDSA, ES256, RS256)", |b| {
        b.iter(|| KeySet::from_json(black_box(&jwks)).expect("the set parses"))
    });

    let keys = KeySet::from_json(&jwks).expect("the set parses");
    assert_eq!(keys.len(), 3);
    let verifier =
        JwtVerifier::new(KeySource::fixed(keys), ISSUER, AUDIENCE, Duration::from_secs(30), Arc::new(SystemClock));
    // A fixed set never waits, so a current-thread runtime only drives the future.
    let runtime = tokio::runtime::Builder::new_current_thread().build().expect("a runtime");
    for signer in &signers {
        let token = assertion(signer);
        runtime.block_on(verifier.check(&token)).expect("the assertion verifies");
        c.bench_function(&format!("verify one {} assertion", signer.name), |b| {
            b.iter(|| runtime.block_on(verifier.check(black_box(&token))).expect("the assertion verifies"))
        });
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
