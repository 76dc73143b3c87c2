//! Throwaway certificate authorities, client certificates for mTLS tests, and server certificates
//! for the test doubles.

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    date_time_ymd,
};

/// A CA that can sign client certificates.
pub struct TestCa {
    pub cert_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

/// A certificate and its key, in PEM (a client's, or a server's from [`TestCa::server`]).
pub struct ClientCert {
    pub cert_pem: String,
    pub key_pem: String,
}

impl TestCa {
    pub fn new(name: &str) -> TestCa {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("valid params");
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().expect("key generation");
        let cert = params.self_signed(&key).expect("self-signed CA");
        TestCa { cert_pem: cert.pem(), issuer: Issuer::new(params, key) }
    }

    /// A client certificate with subject CN `name`.
    pub fn client(&self, name: &str) -> ClientCert {
        self.sign_client(name, CertificateParams::new(Vec::<String>::new()).expect("valid params"))
    }

    /// A client certificate with subject CN `name` that expired at the end of 2020.
    pub fn expired_client(&self, name: &str) -> ClientCert {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("valid params");
        params.not_before = date_time_ymd(2020, 1, 1);
        params.not_after = date_time_ymd(2020, 12, 31);
        self.sign_client(name, params)
    }

    /// A server certificate for `names` (DNS names or IP addresses), e.g. `["localhost", "127.0.0.1"]`.
    pub fn server(&self, names: &[&str]) -> ClientCert {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = CertificateParams::new(names).expect("valid server names");
        params.distinguished_name.push(DnType::CommonName, "localhost");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let key = KeyPair::generate().expect("key generation");
        let cert = params.signed_by(&key, &self.issuer).expect("signed server certificate");
        ClientCert { cert_pem: cert.pem(), key_pem: key.serialize_pem() }
    }

    fn sign_client(&self, name: &str, mut params: CertificateParams) -> ClientCert {
        params.distinguished_name.push(DnType::CommonName, name);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let key = KeyPair::generate().expect("key generation");
        let cert = params.signed_by(&key, &self.issuer).expect("signed client certificate");
        ClientCert { cert_pem: cert.pem(), key_pem: key.serialize_pem() }
    }

    /// Writes the CA certificate to `path` (for --client-ca).
    pub fn write(&self, path: &std::path::Path) {
        std::fs::write(path, &self.cert_pem).expect("write CA file");
    }
}
