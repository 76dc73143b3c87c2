//! Tests of device-user assertion checking: the whole assertion table (one test per row, each
//! refusal with its exact reason), the JWKS URL source against a local https server, and the
//! development issuer.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs1KeyDer};
use serde_json::{Map, Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use super::dev::{DEFAULT_AUDIENCE, DEV_ISSUER, DevIssuer};
use super::jwks::{JwksError, KeySet, KeySource, MAX_JWKS_BYTES, MAX_KEYS_AGE, RemoteConfig};
use super::verifier::{JwtVerifier, MAX_ASSERTION_BYTES};
use crate::domain::clock::{Clock, ShiftedClock, SystemClock};
use crate::domain::identity::{AssertionRejected, DeviceUser};

const ISSUER: &str = "https://idp.example";
const AUDIENCE: &str = "podconnect-test";
const SUBJECT: &str = "alice@example";
/// The verifier's leeway in the table; below the 30 s cap, so the cap has its own row.
const LEEWAY: u64 = 10;
/// The table's "now", in seconds since the epoch: a whole second, so skews are exact.
const NOW: u64 = 1_900_000_000;

/// A clock stopped at a whole second: `now ± leeway ± 1` lands exactly where a row says.
struct FixedClock {
    system: SystemTime,
    instant: Instant,
}

impl FixedClock {
    fn at(seconds: u64) -> FixedClock {
        FixedClock { system: UNIX_EPOCH + Duration::from_secs(seconds), instant: Instant::now() }
    }
}

impl Clock for FixedClock {
    fn instant(&self) -> Instant {
        self.instant
    }

    fn system(&self) -> SystemTime {
        self.system
    }
}

/// A private key, the kid and algorithm it signs under, and its public JWK.
struct Signer {
    kid: String,
    alg: Algorithm,
    key: EncodingKey,
    jwk: Value,
}

/// The trusted keys (one per allowed algorithm) and others that are not trusted.
struct Keys {
    ed: Signer,
    es: Signer,
    rs: Signer,
    /// Not in the trusted set, but claiming the trusted kids.
    ed_impostor: Signer,
    es_impostor: Signer,
    /// P-384, for an ES384 assertion.
    es384: Signer,
}

fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| Keys {
        ed: ed25519_signer("ed-1"),
        es: p256_signer("es-1"),
        rs: rsa_signer("rs-1"),
        ed_impostor: ed25519_signer("ed-1"),
        es_impostor: p256_signer("es-1"),
        es384: p384_signer("es384-1"),
    })
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn ed25519_signer(kid: &str) -> Signer {
    let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).expect("an Ed25519 key");
    let jwk = json!({"kty": "OKP", "crv": "Ed25519", "x": b64(pair.public_key_raw()), "kid": kid, "use": "sig", "alg": "EdDSA"});
    Signer { kid: kid.into(), alg: Algorithm::EdDSA, key: EncodingKey::from_ed_der(&pair.serialize_der()), jwk }
}

fn p256_signer(kid: &str) -> Signer {
    let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("a P-256 key");
    // The uncompressed point: 0x04 || x || y.
    let point = pair.public_key_raw();
    assert_eq!((point.len(), point[0]), (65, 4), "an uncompressed P-256 point");
    let jwk = json!({"kty": "EC", "crv": "P-256", "x": b64(&point[1..33]), "y": b64(&point[33..]), "kid": kid, "alg": "ES256"});
    Signer { kid: kid.into(), alg: Algorithm::ES256, key: EncodingKey::from_ec_der(&pair.serialize_der()), jwk }
}

fn p384_signer(kid: &str) -> Signer {
    let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).expect("a P-384 key");
    let point = pair.public_key_raw();
    let jwk = json!({"kty": "EC", "crv": "P-384", "x": b64(&point[1..49]), "y": b64(&point[49..]), "kid": kid});
    Signer { kid: kid.into(), alg: Algorithm::ES384, key: EncodingKey::from_ec_der(&pair.serialize_der()), jwk }
}

const RSA_PEM: &str = include_str!("testdata/rs256-test-key.pem");

/// The test RSA key (PKCS#1 PEM), with its public JWK read from the key's modulus and exponent.
fn rsa_signer(kid: &str) -> Signer {
    let der = PrivatePkcs1KeyDer::from_pem_slice(RSA_PEM.as_bytes()).expect("a PKCS#1 PEM key");
    // RSAPrivateKey ::= SEQUENCE { version, modulus, publicExponent, ... }
    let (_, key) = x509_parser::der_parser::parse_der(der.secret_pkcs1_der()).expect("DER");
    let fields = key.as_sequence().expect("an RSAPrivateKey sequence");
    let unsigned = |index: usize| {
        let bytes = fields[index].as_slice().expect("an integer");
        let first = bytes.iter().position(|&byte| byte != 0).unwrap_or(bytes.len());
        b64(&bytes[first..])
    };
    let jwk = json!({"kty": "RSA", "n": unsigned(1), "e": unsigned(2), "kid": kid, "use": "sig", "alg": "RS256"});
    Signer { kid: kid.into(), alg: Algorithm::RS256, key: EncodingKey::from_rsa_der(der.secret_pkcs1_der()), jwk }
}

fn jwks(signers: &[&Signer]) -> Value {
    json!({"keys": signers.iter().map(|signer| signer.jwk.clone()).collect::<Vec<_>>()})
}

fn trusted_set() -> KeySet {
    let k = keys();
    let json = serde_json::to_vec(&jwks(&[&k.ed, &k.es, &k.rs])).expect("JSON");
    KeySet::from_json(&json).expect("the trusted set parses")
}

fn verifier_with_leeway(leeway: Duration) -> JwtVerifier {
    JwtVerifier::new(KeySource::fixed(trusted_set()), ISSUER, AUDIENCE, leeway, Arc::new(FixedClock::at(NOW)))
}

/// The table's verifier: the trusted set, the leeway, the clock at `NOW`.
async fn check(assertion: &str) -> Result<DeviceUser, AssertionRejected> {
    verifier_with_leeway(Duration::from_secs(LEEWAY)).check(assertion).await
}

fn alice() -> Result<DeviceUser, AssertionRejected> {
    Ok(DeviceUser { issuer: ISSUER.into(), subject: SUBJECT.into() })
}

/// Valid claims at `NOW`, good for five minutes.
fn claims() -> Map<String, Value> {
    let Value::Object(claims) = json!({
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": SUBJECT,
        "iat": NOW,
        "nbf": NOW,
        "exp": NOW + 300,
    }) else {
        unreachable!("a JSON object literal")
    };
    claims
}

/// `claims()` with `name` set to `value`.
fn claims_with(name: &str, value: Value) -> Map<String, Value> {
    let mut claims = claims();
    claims.insert(name.into(), value);
    claims
}

/// `claims()` without `name`.
fn claims_without(name: &str) -> Map<String, Value> {
    let mut claims = claims();
    claims.remove(name);
    claims
}

/// An assertion as a standard encoder writes it (jsonwebtoken, header `typ`, `alg`, `kid`).
fn sign(signer: &Signer, claims: &Map<String, Value>) -> String {
    let mut header = Header::new(signer.alg);
    header.kid = Some(signer.kid.clone());
    jsonwebtoken::encode(&header, claims, &signer.key).expect("the test key signs")
}

/// `{"alg": …, "kid": …}` for `signer`, to change before `sign_raw`.
fn header_of(signer: &Signer) -> Map<String, Value> {
    let alg = serde_json::to_value(signer.alg).expect("an algorithm name");
    let Value::Object(header) = json!({"alg": alg, "kid": signer.kid}) else { unreachable!("a JSON object literal") };
    header
}

/// A hand-made assertion: these bytes as header and payload, signed by `key` with `alg`.
fn sign_bytes(header: &[u8], payload: &[u8], key: &EncodingKey, alg: Algorithm) -> String {
    sign_segments(&b64(header), &b64(payload), key, alg)
}

/// A hand-made assertion: these (already encoded) segments, signed by `key` with `alg`.
fn sign_segments(header: &str, payload: &str, key: &EncodingKey, alg: Algorithm) -> String {
    let message = format!("{header}.{payload}");
    let signature = jsonwebtoken::crypto::sign(message.as_bytes(), key, alg).expect("the test key signs");
    format!("{message}.{signature}")
}

/// A hand-made assertion with this header, signed by `signer` with its own algorithm.
fn sign_raw(header: &Map<String, Value>, claims: &Map<String, Value>, signer: &Signer) -> String {
    let header = serde_json::to_vec(header).expect("JSON");
    let payload = serde_json::to_vec(claims).expect("JSON");
    sign_bytes(&header, &payload, &signer.key, signer.alg)
}

fn segments(token: &str) -> Vec<&str> {
    token.split('.').collect()
}

// The assertion table: accepted.

#[tokio::test]
async fn accepts_a_valid_eddsa_assertion() {
    assert_eq!(check(&sign(&keys().ed, &claims())).await, alice());
}

#[tokio::test]
async fn accepts_a_valid_es256_assertion() {
    assert_eq!(check(&sign(&keys().es, &claims())).await, alice());
}

#[tokio::test]
async fn accepts_a_valid_rs256_assertion() {
    assert_eq!(check(&sign(&keys().rs, &claims())).await, alice());
}

#[tokio::test]
async fn accepts_an_audience_array_that_names_this_server() {
    let token = sign(&keys().ed, &claims_with("aud", json!(["storefront", AUDIENCE])));
    assert_eq!(check(&token).await, alice());
}

// Time: exp, nbf, iat against the server's clock, with the leeway.

#[tokio::test]
async fn refuses_an_expired_assertion() {
    let token = sign(&keys().ed, &claims_with("exp", json!(NOW - 3600)));
    assert_eq!(check(&token).await, Err(AssertionRejected::Expired));
}

#[tokio::test]
async fn refuses_nbf_in_the_future() {
    let token = sign(&keys().ed, &claims_with("nbf", json!(NOW + 3600)));
    assert_eq!(check(&token).await, Err(AssertionRejected::NotYetValid));
}

#[tokio::test]
async fn refuses_iat_in_the_future() {
    let token = sign(&keys().ed, &claims_with("iat", json!(NOW + 3600)));
    assert_eq!(check(&token).await, Err(AssertionRejected::NotYetValid));
}

#[tokio::test]
async fn refuses_exp_leeway_plus_one_second_ago() {
    let token = sign(&keys().es, &claims_with("exp", json!(NOW - LEEWAY - 1)));
    assert_eq!(check(&token).await, Err(AssertionRejected::Expired));
}

#[tokio::test]
async fn accepts_exp_leeway_minus_one_second_ago() {
    let token = sign(&keys().es, &claims_with("exp", json!(NOW - LEEWAY + 1)));
    assert_eq!(check(&token).await, alice());
}

#[tokio::test]
async fn refuses_nbf_leeway_plus_one_second_ahead() {
    let token = sign(&keys().es, &claims_with("nbf", json!(NOW + LEEWAY + 1)));
    assert_eq!(check(&token).await, Err(AssertionRejected::NotYetValid));
}

#[tokio::test]
async fn accepts_nbf_leeway_minus_one_second_ahead() {
    let token = sign(&keys().es, &claims_with("nbf", json!(NOW + LEEWAY - 1)));
    assert_eq!(check(&token).await, alice());
}

#[tokio::test]
async fn refuses_iat_leeway_plus_one_second_ahead() {
    let token = sign(&keys().rs, &claims_with("iat", json!(NOW + LEEWAY + 1)));
    assert_eq!(check(&token).await, Err(AssertionRejected::NotYetValid));
}

#[tokio::test]
async fn accepts_iat_leeway_minus_one_second_ahead() {
    let token = sign(&keys().rs, &claims_with("iat", json!(NOW + LEEWAY - 1)));
    assert_eq!(check(&token).await, alice());
}

#[tokio::test]
async fn caps_the_leeway_at_30_seconds() {
    let verifier = verifier_with_leeway(Duration::from_secs(600));
    let late = sign(&keys().ed, &claims_with("exp", json!(NOW - 31)));
    assert_eq!(verifier.check(&late).await, Err(AssertionRejected::Expired));
    let within = sign(&keys().ed, &claims_with("exp", json!(NOW - 29)));
    assert_eq!(verifier.check(&within).await, alice());
}

// Claims: each required one, issuer, audience, subject.

#[tokio::test]
async fn refuses_a_missing_exp() {
    assert_eq!(check(&sign(&keys().ed, &claims_without("exp"))).await, Err(AssertionRejected::MissingClaim("exp")));
}

#[tokio::test]
async fn refuses_a_missing_nbf() {
    assert_eq!(check(&sign(&keys().ed, &claims_without("nbf"))).await, Err(AssertionRejected::MissingClaim("nbf")));
}

#[tokio::test]
async fn refuses_a_missing_iat() {
    assert_eq!(check(&sign(&keys().ed, &claims_without("iat"))).await, Err(AssertionRejected::MissingClaim("iat")));
}

#[tokio::test]
async fn refuses_a_missing_iss() {
    assert_eq!(check(&sign(&keys().ed, &claims_without("iss"))).await, Err(AssertionRejected::MissingClaim("iss")));
}

#[tokio::test]
async fn refuses_a_missing_aud() {
    assert_eq!(check(&sign(&keys().ed, &claims_without("aud"))).await, Err(AssertionRejected::MissingClaim("aud")));
}

#[tokio::test]
async fn refuses_a_missing_sub() {
    assert_eq!(check(&sign(&keys().ed, &claims_without("sub"))).await, Err(AssertionRejected::MissingClaim("sub")));
}

#[tokio::test]
async fn refuses_a_wrong_audience() {
    let token = sign(&keys().es, &claims_with("aud", json!("another-service")));
    assert_eq!(check(&token).await, Err(AssertionRejected::Audience));
}

#[tokio::test]
async fn refuses_an_audience_array_without_this_server() {
    let token = sign(&keys().es, &claims_with("aud", json!(["storefront", "another-service"])));
    assert_eq!(check(&token).await, Err(AssertionRejected::Audience));
}

#[tokio::test]
async fn refuses_a_wrong_issuer() {
    let token = sign(&keys().rs, &claims_with("iss", json!("https://idp.attacker.example")));
    assert_eq!(check(&token).await, Err(AssertionRejected::Issuer));
}

#[tokio::test]
async fn refuses_an_empty_subject() {
    let token = sign(&keys().ed, &claims_with("sub", json!("")));
    assert_eq!(check(&token).await, Err(AssertionRejected::Malformed));
}

// Algorithms: only EdDSA, ES256 and RS256, each only with its own kind of key.

#[tokio::test]
async fn refuses_alg_none_without_a_signature() {
    let mut header = header_of(&keys().ed);
    header.insert("alg".into(), json!("none"));
    let header = serde_json::to_vec(&header).expect("JSON");
    let payload = serde_json::to_vec(&claims()).expect("JSON");
    let token = format!("{}.{}.", b64(&header), b64(&payload));
    assert_eq!(check(&token).await, Err(AssertionRejected::Malformed));
}

#[tokio::test]
async fn refuses_alg_none_with_a_signature() {
    let mut header = header_of(&keys().ed);
    header.insert("alg".into(), json!("none"));
    let token = sign_raw(&header, &claims(), &keys().ed);
    assert_eq!(check(&token).await, Err(AssertionRejected::Algorithm("none".into())));
}

/// The classic confusion: HMAC keyed with the public key, hoping the server uses it as a secret.
#[tokio::test]
async fn refuses_hs256_signed_with_the_public_key() {
    let es = &keys().es;
    let mut header = header_of(es);
    header.insert("alg".into(), json!("HS256"));
    let public_jwk = serde_json::to_vec(&es.jwk).expect("JSON");
    for public in [public_jwk, es.jwk["x"].as_str().expect("x").as_bytes().to_vec()] {
        let hmac = EncodingKey::from_secret(&public).expect("an HMAC key");
        let token = sign_bytes(
            &serde_json::to_vec(&header).expect("JSON"),
            &serde_json::to_vec(&claims()).expect("JSON"),
            &hmac,
            Algorithm::HS256,
        );
        assert_eq!(check(&token).await, Err(AssertionRejected::Algorithm("HS256".into())));
    }
}

#[tokio::test]
async fn refuses_ps256() {
    let rs = &keys().rs;
    let mut header = header_of(rs);
    header.insert("alg".into(), json!("PS256"));
    let token = sign_bytes(
        &serde_json::to_vec(&header).expect("JSON"),
        &serde_json::to_vec(&claims()).expect("JSON"),
        &rs.key,
        Algorithm::PS256,
    );
    assert_eq!(check(&token).await, Err(AssertionRejected::Algorithm("PS256".into())));
}

#[tokio::test]
async fn refuses_es384() {
    let token = sign(&keys().es384, &claims());
    assert_eq!(check(&token).await, Err(AssertionRejected::Algorithm("ES384".into())));
}

#[tokio::test]
async fn refuses_an_eddsa_header_naming_an_rsa_kid() {
    let mut header = header_of(&keys().ed);
    header.insert("kid".into(), json!(keys().rs.kid));
    let token = sign_raw(&header, &claims(), &keys().ed);
    assert_eq!(check(&token).await, Err(AssertionRejected::UnknownKey));
}

#[tokio::test]
async fn refuses_an_rs256_header_naming_an_ec_kid() {
    let mut header = header_of(&keys().rs);
    header.insert("kid".into(), json!(keys().es.kid));
    let token = sign_raw(&header, &claims(), &keys().rs);
    assert_eq!(check(&token).await, Err(AssertionRejected::UnknownKey));
}

// Keys: the kid picks a configured key; the token never supplies or points at one.

#[tokio::test]
async fn refuses_an_unknown_kid() {
    let mut header = header_of(&keys().ed);
    header.insert("kid".into(), json!("ed-2"));
    assert_eq!(check(&sign_raw(&header, &claims(), &keys().ed)).await, Err(AssertionRejected::UnknownKey));
}

#[tokio::test]
async fn refuses_a_missing_kid() {
    let mut header = header_of(&keys().ed);
    header.remove("kid");
    assert_eq!(check(&sign_raw(&header, &claims(), &keys().ed)).await, Err(AssertionRejected::UnknownKey));
}

#[tokio::test]
async fn refuses_an_empty_kid() {
    let mut header = header_of(&keys().ed);
    header.insert("kid".into(), json!(""));
    assert_eq!(check(&sign_raw(&header, &claims(), &keys().ed)).await, Err(AssertionRejected::UnknownKey));
}

#[tokio::test]
async fn refuses_a_kid_that_is_not_a_string() {
    let mut header = header_of(&keys().ed);
    header.insert("kid".into(), json!(["ed-1"]));
    assert_eq!(check(&sign_raw(&header, &claims(), &keys().ed)).await, Err(AssertionRejected::Malformed));
}

/// A token signed by a trusted key, but carrying `name: value` in its header.
async fn check_with_header(name: &str, value: Value) -> Result<DeviceUser, AssertionRejected> {
    let mut header = header_of(&keys().ed);
    header.insert(name.into(), value);
    check(&sign_raw(&header, &claims(), &keys().ed)).await
}

#[tokio::test]
async fn refuses_a_jku_header() {
    let refused = check_with_header("jku", json!("https://attacker.example/jwks.json")).await;
    assert_eq!(refused, Err(AssertionRejected::KeySourceHeader("jku")));
}

#[tokio::test]
async fn refuses_an_x5u_header() {
    let refused = check_with_header("x5u", json!("https://attacker.example/cert.pem")).await;
    assert_eq!(refused, Err(AssertionRejected::KeySourceHeader("x5u")));
}

#[tokio::test]
async fn refuses_a_jwk_header() {
    // The very key that signed it, embedded: still not a configured key.
    let refused = check_with_header("jwk", keys().ed_impostor.jwk.clone()).await;
    assert_eq!(refused, Err(AssertionRejected::KeySourceHeader("jwk")));
}

#[tokio::test]
async fn refuses_an_x5c_header() {
    let refused = check_with_header("x5c", json!(["MIIBszCCAVmgAwIBAgIUEXAMPLE"])).await;
    assert_eq!(refused, Err(AssertionRejected::KeySourceHeader("x5c")));
}

#[tokio::test]
async fn refuses_a_crit_header() {
    let refused = check_with_header("crit", json!(["exp"])).await;
    assert_eq!(refused, Err(AssertionRejected::Malformed));
}

// Signatures.

#[tokio::test]
async fn refuses_an_eddsa_signature_by_another_key_with_a_known_kid() {
    let token = sign(&keys().ed_impostor, &claims());
    assert_eq!(check(&token).await, Err(AssertionRejected::Signature));
}

#[tokio::test]
async fn refuses_an_es256_signature_by_another_key_with_a_known_kid() {
    let token = sign(&keys().es_impostor, &claims());
    assert_eq!(check(&token).await, Err(AssertionRejected::Signature));
}

#[tokio::test]
async fn refuses_an_rs256_signature_with_one_bit_flipped() {
    let token = sign(&keys().rs, &claims());
    let parts = segments(&token);
    let mut signature = URL_SAFE_NO_PAD.decode(parts[2]).expect("base64url");
    signature[100] ^= 0x01;
    let token = format!("{}.{}.{}", parts[0], parts[1], b64(&signature));
    assert_eq!(check(&token).await, Err(AssertionRejected::Signature));
}

#[tokio::test]
async fn refuses_a_payload_changed_after_signing() {
    let token = sign(&keys().ed, &claims());
    let parts = segments(&token);
    let mallory = serde_json::to_vec(&claims_with("sub", json!("mallory@example"))).expect("JSON");
    let token = format!("{}.{}.{}", parts[0], b64(&mallory), parts[2]);
    assert_eq!(check(&token).await, Err(AssertionRejected::Signature));
}

// Shape: not a compact JWS, or too large.

#[tokio::test]
async fn refuses_a_token_truncated_by_one_character() {
    let token = sign(&keys().ed, &claims());
    // 85 base64url characters cannot encode whole bytes.
    assert_eq!(check(&token[..token.len() - 1]).await, Err(AssertionRejected::Malformed));
}

#[tokio::test]
async fn refuses_a_signature_missing_its_last_bytes() {
    for signer in [&keys().ed, &keys().es, &keys().rs] {
        let token = sign(signer, &claims());
        let parts = segments(&token);
        let signature = URL_SAFE_NO_PAD.decode(parts[2]).expect("base64url");
        let token = format!("{}.{}.{}", parts[0], parts[1], b64(&signature[..signature.len() - 3]));
        assert_eq!(check(&token).await, Err(AssertionRejected::Signature), "{:?}", signer.alg);
    }
}

#[tokio::test]
async fn refuses_a_token_without_its_signature() {
    let token = sign(&keys().ed, &claims());
    let cut = token.rfind('.').expect("three segments") + 1;
    assert_eq!(check(&token[..cut]).await, Err(AssertionRejected::Malformed));
}

#[tokio::test]
async fn refuses_a_token_cut_inside_the_payload() {
    let token = sign(&keys().ed, &claims());
    let cut = token.find('.').expect("three segments") + 10;
    assert_eq!(check(&token[..cut]).await, Err(AssertionRejected::Malformed));
}

#[tokio::test]
async fn refuses_an_empty_assertion() {
    assert_eq!(check("").await, Err(AssertionRejected::Malformed));
}

#[tokio::test]
async fn refuses_garbage_segments() {
    for garbage in ["abc.def.ghi", "a.b.c", "....", "not a token", "e30.e30.e30"] {
        assert_eq!(check(garbage).await, Err(AssertionRejected::Malformed), "{garbage}");
    }
}

#[tokio::test]
async fn refuses_bad_base64() {
    let token = sign(&keys().ed, &claims());
    let parts = segments(&token);
    for (segment, bad) in [(0, "eyJ+"), (1, "eyJ/"), (2, "AA=="), (1, "e30 "), (2, "é")] {
        let mut parts = parts.clone();
        let changed = format!("{}{bad}", parts[segment]);
        parts[segment] = &changed;
        assert_eq!(check(&parts.join(".")).await, Err(AssertionRejected::Malformed), "segment {segment} + {bad:?}");
    }
}

#[tokio::test]
async fn refuses_a_signed_payload_of_impossible_base64_length() {
    let ed = &keys().ed;
    let header = b64(&serde_json::to_vec(&header_of(ed)).expect("JSON"));
    // 4n+1 base64 characters decode to no byte string; the signature covers them as they are.
    let mut payload = b64(&serde_json::to_vec(&claims()).expect("JSON"));
    while payload.len() % 4 != 1 {
        payload.push('A');
    }
    let token = sign_segments(&header, &payload, &ed.key, ed.alg);
    assert_eq!(check(&token).await, Err(AssertionRejected::Malformed));
}

#[tokio::test]
async fn refuses_two_segments() {
    let token = sign(&keys().ed, &claims());
    let parts = segments(&token);
    assert_eq!(check(&format!("{}.{}", parts[0], parts[1])).await, Err(AssertionRejected::Malformed));
}

#[tokio::test]
async fn refuses_four_segments() {
    let token = sign(&keys().ed, &claims());
    assert_eq!(check(&format!("{token}.{}", segments(&token)[2])).await, Err(AssertionRejected::Malformed));
}

#[tokio::test]
async fn refuses_a_header_that_is_not_json() {
    let ed = &keys().ed;
    let token = sign_bytes(b"alg=EdDSA;kid=ed-1", &serde_json::to_vec(&claims()).expect("JSON"), &ed.key, ed.alg);
    assert_eq!(check(&token).await, Err(AssertionRejected::Malformed));
}

#[tokio::test]
async fn refuses_a_header_that_is_not_an_object() {
    let ed = &keys().ed;
    let token = sign_bytes(br#"["EdDSA","ed-1"]"#, &serde_json::to_vec(&claims()).expect("JSON"), &ed.key, ed.alg);
    assert_eq!(check(&token).await, Err(AssertionRejected::Malformed));
}

#[tokio::test]
async fn refuses_a_signed_payload_that_is_not_json() {
    let ed = &keys().ed;
    let header = serde_json::to_vec(&header_of(ed)).expect("JSON");
    let token = sign_bytes(&header, b"sub=alice;aud=podconnect-test", &ed.key, ed.alg);
    assert_eq!(check(&token).await, Err(AssertionRejected::Malformed));
}

/// A valid EdDSA assertion exactly `len` characters long, padded in a claim and with spaces
/// after the header's JSON.
fn assertion_of_length(len: usize) -> String {
    let ed = &keys().ed;
    let header = serde_json::to_vec(&header_of(ed)).expect("JSON");
    let payload = serde_json::to_vec(&claims_with("pad", json!(""))).expect("JSON");
    let encoded = |bytes: usize| (4 * bytes).div_ceil(3);
    // An Ed25519 signature is 64 bytes: 86 characters.
    let fixed = 2 + encoded(64);
    for spaces in 0..3 {
        for pad in 0..len {
            if fixed + encoded(header.len() + spaces) + encoded(payload.len() + pad) == len {
                let mut header = header.clone();
                header.extend(std::iter::repeat_n(b' ', spaces));
                let claims = claims_with("pad", json!("a".repeat(pad)));
                let token = sign_bytes(&header, &serde_json::to_vec(&claims).expect("JSON"), &ed.key, ed.alg);
                assert_eq!(token.len(), len);
                return token;
            }
        }
    }
    unreachable!("some padding reaches {len} characters")
}

#[tokio::test]
async fn accepts_an_assertion_of_exactly_16_kib() {
    assert_eq!(check(&assertion_of_length(MAX_ASSERTION_BYTES)).await, alice());
}

#[tokio::test]
async fn refuses_an_assertion_over_16_kib() {
    let token = assertion_of_length(MAX_ASSERTION_BYTES + 1);
    assert_eq!(check(&token).await, Err(AssertionRejected::TooLarge));
    assert_eq!(check(&"A".repeat(1024 * 1024)).await, Err(AssertionRejected::TooLarge));
}

// Key sets.

#[test]
fn a_jwks_with_only_symmetric_or_foreign_keys_has_no_usable_key() {
    let k = keys();
    let oct = json!({"kty": "oct", "k": b64(b"a shared secret of 32 bytes....."), "kid": "hmac", "alg": "HS256"});
    let json = serde_json::to_vec(&json!({"keys": [oct, k.es384.jwk]})).expect("JSON");
    assert!(matches!(KeySet::from_json(&json), Err(JwksError::NoUsableKey)));
}

#[test]
fn a_jwks_skips_keys_it_cannot_use_and_keeps_the_rest() {
    let k = keys();
    let mut no_kid = k.es.jwk.clone();
    no_kid.as_object_mut().expect("an object").remove("kid");
    let mut wrong_alg = k.ed.jwk.clone();
    wrong_alg["alg"] = json!("RS256");
    let mut encryption = k.rs.jwk.clone();
    encryption["use"] = json!("enc");
    let json = serde_json::to_vec(&json!({"keys": [no_kid, wrong_alg, encryption, k.es384.jwk, k.ed.jwk, "junk"]}))
        .expect("JSON");
    let set = KeySet::from_json(&json).expect("one usable key");
    assert_eq!(set.len(), 1);
}

#[test]
fn a_jwks_over_the_size_cap_is_refused_unread() {
    let mut json = serde_json::to_vec(&jwks(&[&keys().ed])).expect("JSON");
    json.resize(MAX_JWKS_BYTES + 1, b' ');
    assert!(matches!(KeySet::from_json(&json), Err(JwksError::TooLarge)));
}

// The JWKS URL source, against a local https server.

/// What the test server answers.
#[derive(Clone)]
enum Reply {
    /// 200 with a Content-Length.
    Json(Vec<u8>),
    /// 200 with no length: the body ends when the connection closes.
    Unsized(Vec<u8>),
    Status(u16),
}

/// An https server on 127.0.0.1 (certificate from a development CA made for it) that counts
/// requests and answers each with the current `Reply`.
struct JwksServer {
    url: reqwest::Url,
    ca_file: PathBuf,
    reply: Arc<Mutex<Reply>>,
    requests: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

impl Drop for JwksServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl JwksServer {
    async fn start(reply: Reply) -> JwksServer {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let ca = crate::tls::DevCa::in_dir(dir.path());
        ca.ensure().expect("a test CA and certificate");
        let chain = crate::tls::load_certs(&ca.server_cert).expect("the test certificate");
        let key = PrivateKeyDer::from_pem_file(&ca.server_key).expect("the test certificate's key");
        let mut config = rustls::ServerConfig::builder_with_provider(crate::tls::crypto_provider())
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .expect("a server TLS config");
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        // Bound before the URL is handed out: the server is ready once this returns.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a loopback port");
        let port = listener.local_addr().expect("the bound address").port();
        let url = reqwest::Url::parse(&format!("https://127.0.0.1:{port}/.well-known/jwks.json")).expect("a URL");
        let reply = Arc::new(Mutex::new(reply));
        let requests = Arc::new(AtomicUsize::new(0));
        let (shared_reply, counter) = (reply.clone(), requests.clone());
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (acceptor, reply, counter) = (acceptor.clone(), shared_reply.clone(), counter.clone());
                tokio::spawn(async move {
                    // A client that gives up mid-answer (a body over the cap) is not an error here.
                    let _ = answer(acceptor, tcp, &reply, &counter).await;
                });
            }
        });
        JwksServer { url, ca_file: ca.ca_cert.clone(), reply, requests, task, _dir: dir }
    }

    fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }

    fn set_reply(&self, reply: Reply) {
        *self.reply.lock().expect("the reply lock") = reply;
    }

    fn config(&self, refresh_min: Duration) -> RemoteConfig {
        RemoteConfig { url: self.url.clone(), ca_file: Some(self.ca_file.clone()), refresh_min }
    }
}

/// One connection: the TLS handshake, one request (its headers only; a GET has no body), one
/// answer, then close.
async fn answer(
    acceptor: tokio_rustls::TlsAcceptor,
    tcp: tokio::net::TcpStream,
    reply: &Mutex<Reply>,
    requests: &AtomicUsize,
) -> std::io::Result<()> {
    let mut tls = acceptor.accept(tcp).await?;
    let mut request = Vec::new();
    let mut buffer = [0u8; 1024];
    while !request.windows(4).any(|window| window == b"\r\n\r\n") {
        let read = tls.read(&mut buffer).await?;
        if read == 0 || request.len() > 16 * 1024 {
            return Ok(());
        }
        request.extend_from_slice(&buffer[..read]);
    }
    assert!(request.starts_with(b"GET /.well-known/jwks.json HTTP/1.1\r\n"), "the client asks for the JWKS path");
    requests.fetch_add(1, Ordering::SeqCst);
    let reply = reply.lock().expect("the reply lock").clone();
    let response = match reply {
        Reply::Json(body) => {
            let head = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/jwk-set+json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                body.len()
            );
            [head.into_bytes(), body].concat()
        }
        Reply::Unsized(body) => {
            let head = "HTTP/1.1 200 OK\r\ncontent-type: application/jwk-set+json\r\nconnection: close\r\n\r\n";
            [head.as_bytes().to_vec(), body].concat()
        }
        Reply::Status(status) => {
            format!("HTTP/1.1 {status} Oops\r\ncontent-length: 0\r\nconnection: close\r\n\r\n").into_bytes()
        }
    };
    tls.write_all(&response).await?;
    tls.shutdown().await
}

fn served(signers: &[&Signer]) -> Reply {
    Reply::Json(serde_json::to_vec(&jwks(signers)).expect("JSON"))
}

const REFRESH_MIN: Duration = Duration::from_secs(60);

/// A verifier on `server`'s JWKS URL, on a clock the test moves; claims are made at real time.
async fn remote_verifier(server: &JwksServer, clock: &Arc<ShiftedClock>) -> JwtVerifier {
    let source = KeySource::remote(server.config(REFRESH_MIN), clock.clone()).await.expect("the JWKS client");
    JwtVerifier::new(source, ISSUER, AUDIENCE, Duration::from_secs(LEEWAY), clock.clone())
}

/// `claims()` valid for the next two hours of real time (the remote tests' clocks run for real).
fn current_claims() -> Map<String, Value> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).expect("after 1970").as_secs();
    let mut claims = claims();
    for (name, value) in [("iat", now), ("nbf", now), ("exp", now + 2 * 3600)] {
        claims.insert(name.into(), json!(value));
    }
    claims
}

/// A current assertion signed by `signer` under `kid`.
fn current_with_kid(signer: &Signer, kid: &str) -> String {
    let mut header = header_of(signer);
    header.insert("kid".into(), json!(kid));
    sign_raw(&header, &current_claims(), signer)
}

#[tokio::test]
async fn remote_keys_are_fetched_at_start() {
    let k = keys();
    let server = JwksServer::start(served(&[&k.ed, &k.rs])).await;
    let clock = Arc::new(ShiftedClock::new());
    let verifier = remote_verifier(&server, &clock).await;
    assert_eq!(server.requests(), 1);
    assert_eq!(verifier.check(&sign(&k.ed, &current_claims())).await, alice());
    assert_eq!(verifier.check(&sign(&k.rs, &current_claims())).await, alice());
    assert_eq!(server.requests(), 1, "known kids are checked against the held set");
}

#[tokio::test]
async fn a_new_kid_triggers_exactly_one_fetch_and_then_verifies() {
    let k = keys();
    let server = JwksServer::start(served(&[&k.ed])).await;
    let clock = Arc::new(ShiftedClock::new());
    let verifier = remote_verifier(&server, &clock).await;
    server.set_reply(served(&[&k.ed, &k.es]));
    // The start-up fetch counts: within refresh_min of it, a new kid waits.
    assert_eq!(verifier.check(&sign(&k.es, &current_claims())).await, Err(AssertionRejected::UnknownKey));
    assert_eq!(server.requests(), 1);

    clock.advance(REFRESH_MIN + Duration::from_secs(1));
    assert_eq!(verifier.check(&sign(&k.es, &current_claims())).await, alice());
    assert_eq!(server.requests(), 2);
    assert_eq!(verifier.check(&sign(&k.es, &current_claims())).await, alice());
    assert_eq!(verifier.check(&sign(&k.ed, &current_claims())).await, alice());
    assert_eq!(server.requests(), 2, "the new kid is held now");
}

#[tokio::test]
async fn a_burst_of_unknown_kids_within_refresh_min_fetches_at_most_once() {
    let k = keys();
    let server = JwksServer::start(served(&[&k.ed])).await;
    let clock = Arc::new(ShiftedClock::new());
    let verifier = remote_verifier(&server, &clock).await;
    clock.advance(REFRESH_MIN + Duration::from_secs(1));

    let tokens: Vec<String> = (0..16).map(|n| current_with_kid(&k.ed, &format!("unknown-{n}"))).collect();
    let together = futures::future::join_all(tokens.iter().map(|token| verifier.check(token))).await;
    assert!(together.iter().all(|checked| *checked == Err(AssertionRejected::UnknownKey)));
    for token in &tokens {
        assert_eq!(verifier.check(token).await, Err(AssertionRejected::UnknownKey));
    }
    assert_eq!(server.requests(), 2, "one fetch at start, one for the whole burst");
    assert_eq!(verifier.check(&sign(&k.ed, &current_claims())).await, alice());
}

#[tokio::test]
async fn another_fetch_is_allowed_once_refresh_min_has_passed() {
    let k = keys();
    let server = JwksServer::start(served(&[&k.ed])).await;
    let clock = Arc::new(ShiftedClock::new());
    let verifier = remote_verifier(&server, &clock).await;
    let unknown = current_with_kid(&k.ed, "unknown");
    for expected_requests in [2, 3, 4] {
        clock.advance(REFRESH_MIN + Duration::from_secs(1));
        assert_eq!(verifier.check(&unknown).await, Err(AssertionRejected::UnknownKey));
        assert_eq!(verifier.check(&unknown).await, Err(AssertionRejected::UnknownKey));
        assert_eq!(server.requests(), expected_requests);
    }
    clock.advance(REFRESH_MIN - Duration::from_secs(1));
    assert_eq!(verifier.check(&unknown).await, Err(AssertionRejected::UnknownKey));
    assert_eq!(server.requests(), 4, "not yet refresh_min since the last fetch");
}

#[tokio::test]
async fn a_key_withdrawn_by_the_issuer_stops_verifying_once_the_set_is_old() {
    let k = keys();
    let server = JwksServer::start(served(&[&k.ed, &k.es])).await;
    let clock = Arc::new(ShiftedClock::new());
    let verifier = remote_verifier(&server, &clock).await;
    server.set_reply(served(&[&k.es]));
    assert_eq!(verifier.check(&sign(&k.ed, &current_claims())).await, alice());
    clock.advance(MAX_KEYS_AGE);
    assert_eq!(verifier.check(&sign(&k.ed, &current_claims())).await, Err(AssertionRejected::UnknownKey));
    assert_eq!(verifier.check(&sign(&k.es, &current_claims())).await, alice());
    assert_eq!(server.requests(), 2);
}

#[tokio::test]
async fn a_failed_refresh_keeps_the_keys_held() {
    let k = keys();
    let server = JwksServer::start(served(&[&k.ed])).await;
    let clock = Arc::new(ShiftedClock::new());
    let verifier = remote_verifier(&server, &clock).await;
    server.set_reply(Reply::Status(503));
    clock.advance(REFRESH_MIN + Duration::from_secs(1));
    assert_eq!(verifier.check(&current_with_kid(&k.ed, "unknown")).await, Err(AssertionRejected::UnknownKey));
    assert_eq!(server.requests(), 2);
    assert_eq!(verifier.check(&sign(&k.ed, &current_claims())).await, alice());
}

#[tokio::test]
async fn a_failed_first_fetch_is_retried_after_refresh_min() {
    let k = keys();
    let server = JwksServer::start(Reply::Status(500)).await;
    let clock = Arc::new(ShiftedClock::new());
    let verifier = remote_verifier(&server, &clock).await;
    let token = sign(&k.ed, &current_claims());
    match verifier.check(&token).await {
        Err(AssertionRejected::KeysUnavailable(reason)) => assert!(reason.contains("HTTP status 500"), "{reason}"),
        other => panic!("expected KeysUnavailable, got {other:?}"),
    }
    assert_eq!(server.requests(), 1, "no fetch within refresh_min of the failed one");
    server.set_reply(served(&[&k.ed]));
    clock.advance(REFRESH_MIN + Duration::from_secs(1));
    assert_eq!(verifier.check(&token).await, alice());
    assert_eq!(server.requests(), 2);
}

/// The refusal for `token` must be KeysUnavailable with a reason containing `expected`.
async fn assert_keys_unavailable(verifier: &JwtVerifier, expected: &str) {
    match verifier.check(&sign(&keys().ed, &current_claims())).await {
        Err(AssertionRejected::KeysUnavailable(reason)) => assert!(reason.contains(expected), "{reason}"),
        other => panic!("expected KeysUnavailable ({expected}), got {other:?}"),
    }
}

#[tokio::test]
async fn a_jwks_over_the_size_cap_is_refused() {
    let mut body = serde_json::to_vec(&jwks(&[&keys().ed])).expect("JSON");
    body.resize(MAX_JWKS_BYTES + 1, b' ');
    let server = JwksServer::start(Reply::Json(body)).await;
    let verifier = remote_verifier(&server, &Arc::new(ShiftedClock::new())).await;
    assert_keys_unavailable(&verifier, "larger than 256 KiB").await;
}

#[tokio::test]
async fn a_jwks_over_the_size_cap_without_a_length_is_refused() {
    let mut body = serde_json::to_vec(&jwks(&[&keys().ed])).expect("JSON");
    body.resize(2 * MAX_JWKS_BYTES, b' ');
    let server = JwksServer::start(Reply::Unsized(body)).await;
    let verifier = remote_verifier(&server, &Arc::new(ShiftedClock::new())).await;
    assert_keys_unavailable(&verifier, "larger than 256 KiB").await;
}

#[tokio::test]
async fn a_jwks_without_a_length_under_the_cap_is_read_to_its_end() {
    let server = JwksServer::start(Reply::Unsized(serde_json::to_vec(&jwks(&[&keys().ed])).expect("JSON"))).await;
    let verifier = remote_verifier(&server, &Arc::new(ShiftedClock::new())).await;
    assert_eq!(verifier.check(&sign(&keys().ed, &current_claims())).await, alice());
}

#[tokio::test]
async fn a_response_that_is_not_a_jwks_leaves_keys_unavailable() {
    let server = JwksServer::start(Reply::Json(b"<html>sign in first</html>".to_vec())).await;
    let verifier = remote_verifier(&server, &Arc::new(ShiftedClock::new())).await;
    assert_keys_unavailable(&verifier, "not a JWKS").await;
}

#[tokio::test]
async fn an_unreachable_jwks_url_leaves_keys_unavailable() {
    // A port that was just free: nothing listens there.
    let port = {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a loopback port");
        listener.local_addr().expect("the bound address").port()
    };
    let server = JwksServer::start(served(&[&keys().ed])).await;
    let mut config = server.config(REFRESH_MIN);
    config.url.set_port(Some(port)).expect("an https URL has a port");
    let clock = Arc::new(ShiftedClock::new());
    let source = KeySource::remote(config, clock.clone()).await.expect("a failed first fetch is not fatal");
    let verifier = JwtVerifier::new(source, ISSUER, AUDIENCE, Duration::from_secs(LEEWAY), clock);
    assert_keys_unavailable(&verifier, "cannot fetch the JWKS").await;
    assert_eq!(server.requests(), 0);
}

#[tokio::test]
async fn a_jwks_server_with_a_certificate_from_another_ca_is_refused() {
    let server = JwksServer::start(served(&[&keys().ed])).await;
    let other = JwksServer::start(served(&[&keys().ed])).await;
    let mut config = server.config(REFRESH_MIN);
    config.ca_file = Some(other.ca_file.clone());
    let clock = Arc::new(ShiftedClock::new());
    let source = KeySource::remote(config, clock.clone()).await.expect("a failed first fetch is not fatal");
    let verifier = JwtVerifier::new(source, ISSUER, AUDIENCE, Duration::from_secs(LEEWAY), clock);
    assert_keys_unavailable(&verifier, "certificate").await;
    assert_eq!(server.requests(), 0);
}

#[tokio::test]
async fn a_plain_http_jwks_url_is_refused() {
    let server = JwksServer::start(served(&[&keys().ed])).await;
    let mut config = server.config(REFRESH_MIN);
    config.url.set_scheme("http").expect("http is a scheme");
    let clock = Arc::new(ShiftedClock::new());
    let source = KeySource::remote(config, clock.clone()).await.expect("a failed first fetch is not fatal");
    let verifier = JwtVerifier::new(source, ISSUER, AUDIENCE, Duration::from_secs(LEEWAY), clock);
    assert_keys_unavailable(&verifier, "cannot fetch the JWKS").await;
    assert_eq!(server.requests(), 0);
}

// The development issuer.

fn dev_verifier(dev: &DevIssuer) -> JwtVerifier {
    let keys = KeySet::from_jwks(&dev.jwks()).expect("the development key set");
    JwtVerifier::new(
        KeySource::fixed(keys),
        DEV_ISSUER,
        DEFAULT_AUDIENCE,
        Duration::from_secs(30),
        Arc::new(SystemClock),
    )
}

fn mode(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path).expect("the file exists").permissions().mode() & 0o777
}

#[tokio::test]
async fn the_dev_issuer_key_is_private_and_its_assertions_verify() {
    let data = tempfile::tempdir().expect("a temporary folder");
    let dev = DevIssuer::load_or_create(data.path()).expect("the development issuer");
    assert_eq!(mode(&DevIssuer::key_path(data.path())), 0o600);
    let token = dev.issue("alice", Duration::from_secs(300)).expect("an assertion");
    let expected = DeviceUser { issuer: DEV_ISSUER.into(), subject: "alice".into() };
    assert_eq!(dev_verifier(&dev).check(&token).await, Ok(expected));
}

#[tokio::test]
async fn reopening_the_dev_issuer_reuses_its_key() {
    let data = tempfile::tempdir().expect("a temporary folder");
    let first = DevIssuer::load_or_create(data.path()).expect("the development issuer");
    let token = first.issue("alice", Duration::from_secs(300)).expect("an assertion");
    let again = DevIssuer::load_or_create(data.path()).expect("the development issuer, reopened");
    assert_eq!(again.kid(), first.kid());
    assert_eq!(dev_verifier(&again).check(&token).await.map(|user| user.subject), Ok("alice".into()));
}

#[tokio::test]
async fn reopening_the_dev_issuer_narrows_a_widened_key_file() {
    use std::os::unix::fs::PermissionsExt as _;
    let data = tempfile::tempdir().expect("a temporary folder");
    DevIssuer::load_or_create(data.path()).expect("the development issuer");
    let key = DevIssuer::key_path(data.path());
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    DevIssuer::load_or_create(data.path()).expect("the development issuer, reopened");
    assert_eq!(mode(&key), 0o600);
}

#[tokio::test]
async fn the_dev_issuer_jwks_file_verifies_its_assertions() {
    let data = tempfile::tempdir().expect("a temporary folder");
    let dev = DevIssuer::load_or_create(data.path()).expect("the development issuer");
    let file = DevIssuer::key_path(data.path()).with_file_name("dev-issuer.jwks.json");
    let keys = KeySet::from_file(&file).expect("the development JWKS file");
    let verifier = JwtVerifier::new(
        KeySource::fixed(keys),
        DEV_ISSUER,
        DEFAULT_AUDIENCE,
        Duration::ZERO,
        Arc::new(FixedClock::at(NOW)),
    );
    let token =
        dev.issue_at("bob", Duration::from_secs(60), UNIX_EPOCH + Duration::from_secs(NOW)).expect("an assertion");
    assert_eq!(verifier.check(&token).await.map(|user| user.subject), Ok("bob".into()));
    let stale =
        dev.issue_at("bob", Duration::from_secs(60), UNIX_EPOCH + Duration::from_secs(NOW - 61)).expect("an assertion");
    assert_eq!(verifier.check(&stale).await, Err(AssertionRejected::Expired));
}

#[tokio::test]
async fn the_dev_issuer_signs_for_its_configured_audience_only() {
    let data = tempfile::tempdir().expect("a temporary folder");
    let dev = DevIssuer::load_or_create(data.path()).expect("the development issuer").with_audience("elsewhere");
    let token = dev.issue("alice", Duration::from_secs(300)).expect("an assertion");
    assert_eq!(dev_verifier(&dev).check(&token).await, Err(AssertionRejected::Audience));
}

#[test]
fn the_dev_issuer_refuses_empty_names_and_long_lifetimes() {
    let data = tempfile::tempdir().expect("a temporary folder");
    let dev = DevIssuer::load_or_create(data.path()).expect("the development issuer");
    assert!(dev.issue("  ", Duration::from_secs(60)).is_err());
    assert!(dev.issue("alice", Duration::ZERO).is_err());
    assert!(dev.issue("alice", Duration::from_secs(24 * 3600 + 1)).is_err());
    assert!(dev.issue(&"a".repeat(257), Duration::from_secs(60)).is_err());
}
