//! The Bambu stand-ins: throw-away certificates shaped like a printer's (CA "BBL CA", leaf
//! CN = serial), a mosquitto with that certificate and a password file (user `bblp`, the access
//! code), and a vsftpd with implicit TLS whose upload directory is the simulated SD card.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

use super::broker::Broker;

pub const SERIAL: &str = "01S00A000000000";
/// The password of the `bblp` account scripts/install-test-deps.sh creates for vsftpd.
pub const ACCESS_CODE: &str = "farmhand-test-code";

/// A CA and one leaf it signed, as PEM files in a temp dir.
pub struct Certs {
    pub dir: tempfile::TempDir,
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Certs {
    /// A leaf with subject `CN={cn}` and a SAN for 127.0.0.1 (mosquitto and vsftpd do not care;
    /// the driver checks the CN).
    pub fn new(cn: &str) -> Certs {
        let ca_key = KeyPair::generate().expect("CA key");
        let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca.distinguished_name
            .push(DnType::OrganizationName, "BBL Technologies Co., Ltd");
        ca.distinguished_name.push(DnType::CommonName, "BBL CA");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_cert = ca.self_signed(&ca_key).expect("CA cert");
        let issuer = Issuer::new(ca, ca_key);

        let key = KeyPair::generate().expect("leaf key");
        let mut leaf = CertificateParams::new(vec!["127.0.0.1".to_string()]).expect("params");
        leaf.distinguished_name.push(DnType::CommonName, cn);
        leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let cert = leaf.signed_by(&key, &issuer).expect("leaf cert");

        let dir = tempfile::tempdir().expect("temp dir");
        let write = |name: &str, text: String| {
            let p = dir.path().join(name);
            std::fs::write(&p, text).expect("write PEM");
            p
        };
        let certs = Certs {
            ca: write("ca.pem", ca_cert.pem()),
            cert: write("cert.pem", cert.pem()),
            key: write("key.pem", key.serialize_pem()),
            dir,
        };
        // mosquitto drops to its own user unless told otherwise (TOOLING.md): keep it readable.
        chmod(&certs.key, 0o644);
        certs
    }
}

fn chmod(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

fn find_bin(name: &str, package: &str) -> PathBuf {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .chain(["/usr/sbin".into(), "/usr/bin".into()])
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "the Bambu tests need `{name}`: install the Debian package `{package}` \
                 (scripts/install-test-deps.sh does)"
            )
        })
}

/// mosquitto over TLS with the printer's certificate, accepting only `bblp` / `access_code`.
pub fn tls_broker(certs: &Certs, access_code: &str) -> Broker {
    let passwd_bin = find_bin("mosquitto_passwd", "mosquitto");
    let (ca, cert, key) = (certs.ca.clone(), certs.cert.clone(), certs.key.clone());
    let code = access_code.to_string();
    Broker::start_with(move |dir, port| {
        let passwd = dir.join("passwd");
        let ok = Command::new(&passwd_bin)
            .arg("-b")
            .arg("-c")
            .arg(&passwd)
            .arg("bblp")
            .arg(&code)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("mosquitto_passwd runs")
            .success();
        assert!(ok, "mosquitto_passwd could not write {}", passwd.display());
        chmod(&passwd, 0o644);
        format!(
            "listener {port} 127.0.0.1\ncafile {}\ncertfile {}\nkeyfile {}\n\
             allow_anonymous false\npassword_file {}\npersistence false\nuser root\n\
             sys_interval 1\n",
            ca.display(),
            cert.display(),
            key.display(),
            passwd.display()
        )
    })
}

/// vsftpd with implicit TLS on a free port; uploads land in [`Ftps::sdcard`].
pub struct Ftps {
    child: Child,
    pub port: u16,
    dir: tempfile::TempDir,
}

impl Ftps {
    pub fn start(certs: &Certs) -> Ftps {
        let bin = find_bin("vsftpd", "vsftpd");
        assert!(
            Path::new("/etc/pam.d/farmhand-test-ftps").is_file(),
            "the FTPS tests log in as bblp through PAM service farmhand-test-ftps: run scripts/install-test-deps.sh as root"
        );
        let free = || {
            TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("a free port")
                .port()
        };
        let port = free();
        let pasv = free();
        let dir = tempfile::tempdir().expect("temp dir");
        let sdcard = dir.path().join("sdcard");
        let empty = dir.path().join("empty");
        std::fs::create_dir(&sdcard).expect("sdcard dir");
        std::fs::create_dir(&empty).expect("empty dir");
        // vsftpd writes as bblp; the temp dir's parents must be traversable.
        chmod(dir.path(), 0o755);
        chmod(&sdcard, 0o777);
        chmod(&empty, 0o755);
        let conf = dir.path().join("vsftpd.conf");
        std::fs::write(
            &conf,
            format!(
                "listen=YES\nlisten_ipv6=NO\nlisten_address=127.0.0.1\nlisten_port={port}\n\
                 background=NO\nanonymous_enable=NO\nlocal_enable=YES\nwrite_enable=YES\n\
                 local_umask=022\nlocal_root={}\npam_service_name=farmhand-test-ftps\n\
                 check_shell=NO\nuserlist_enable=NO\nssl_enable=YES\nimplicit_ssl=YES\n\
                 rsa_cert_file={}\nrsa_private_key_file={}\nforce_local_logins_ssl=YES\n\
                 force_local_data_ssl=YES\nrequire_ssl_reuse=YES\nsecure_chroot_dir={}\n\
                 seccomp_sandbox=NO\npasv_enable=YES\npasv_min_port={pasv}\npasv_max_port={pasv}\n\
                 xferlog_enable=NO\nvsftpd_log_file={}\ndual_log_enable=YES\nlog_ftp_protocol=YES\n",
                sdcard.display(),
                certs.cert.display(),
                certs.key.display(),
                empty.display(),
                dir.path().join("vsftpd.log").display(),
            ),
        )
        .expect("write vsftpd config");
        let child = Command::new(bin)
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("vsftpd starts");
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "vsftpd did not listen on {port} within 10 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Ftps { child, port, dir }
    }

    pub fn sdcard(&self) -> PathBuf {
        self.dir.path().join("sdcard")
    }

    /// The FTP protocol log (commands and replies).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("vsftpd.log")).unwrap_or_default()
    }
}

impl Drop for Ftps {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
