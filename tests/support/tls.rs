//! Certificates for TLS tests, made by the `openssl` command line in a temporary directory: a
//! test CA, a server certificate for 127.0.0.1 and `localhost` signed by it, a client
//! certificate signed by it, and a second, unrelated CA that signed nothing the servers use.

use std::path::{Path, PathBuf};
use std::process::Command;

use tempfile::TempDir;

const INSTALL_HINT: &str = "the TLS tests make their certificates with the `openssl` command: \
     install it with `apt-get install openssl`, or run scripts/test.sh which installs it";

/// The certificate files of one test PKI; deleted on drop.
pub struct TestPki {
    dir: TempDir,
}

impl TestPki {
    /// Makes every file (EC P-256 keys, valid for a day).
    pub fn new() -> Self {
        let pki = Self {
            dir: tempfile::tempdir().unwrap(),
        };
        pki.ca("ca");
        pki.ca("other-ca");
        pki.leaf(
            "server",
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n",
            1,
        );
        pki.leaf("client", "extendedKeyUsage=clientAuth\n", 2);
        pki
    }

    /// A file of the PKI: `ca.pem`, `other-ca.pem`, `server.pem`, `server.key`, `client.pem`,
    /// `client.key`.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn ca(&self, name: &str) {
        openssl(
            self.dir.path(),
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-days",
                "1",
                "-subj",
                &format!("/CN=rustforge {name}"),
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
                "-keyout",
                &format!("{name}.key"),
                "-out",
                &format!("{name}.pem"),
            ],
        );
    }

    /// A key and a certificate signed by `ca`, with the extensions in `ext`.
    fn leaf(&self, name: &str, ext: &str, serial: u32) {
        let dir = self.dir.path();
        std::fs::write(dir.join(format!("{name}.ext")), ext).unwrap();
        openssl(
            dir,
            &[
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-subj",
                &format!("/CN=rustforge {name}"),
                "-keyout",
                &format!("{name}.key"),
                "-out",
                &format!("{name}.csr"),
            ],
        );
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                &format!("{name}.csr"),
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-set_serial",
                &serial.to_string(),
                "-days",
                "1",
                "-extfile",
                &format!("{name}.ext"),
                "-out",
                &format!("{name}.pem"),
            ],
        );
    }
}

fn openssl(dir: &Path, args: &[&str]) {
    let output = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run openssl ({e}); {INSTALL_HINT}"));
    assert!(
        output.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}
