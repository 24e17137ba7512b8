//! Files for the malware tests, made by Python's own zipfile and tarfile (not by the code under
//! test): the EICAR test file plain, zipped, inside a tar.gz and inside a nested zip, a clean
//! file beside them, and a zip bomb. The EICAR string is assembled at run time, so no file of
//! this repository is the test file.

use std::path::Path;

use crate::*;

const MAKE: &str = r#"
import io, sys, tarfile, zipfile
d = sys.argv[1]
eicar = ("X5O!P%@AP[4\\PZX54(P^)7CC)7}$" + "EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*").encode()
open(d + "/eicar.com", "wb").write(eicar)
with zipfile.ZipFile(d + "/eicar.zip", "w", zipfile.ZIP_DEFLATED) as z:
    z.writestr("eicar.com", eicar)
with tarfile.open(d + "/eicar.tar.gz", "w:gz") as t:
    i = tarfile.TarInfo("x/eicar.com"); i.size = len(eicar); t.addfile(i, io.BytesIO(eicar))
inner = io.BytesIO()
with zipfile.ZipFile(inner, "w", zipfile.ZIP_DEFLATED) as z:
    z.writestr("eicar.com", eicar)
with zipfile.ZipFile(d + "/nested.zip", "w", zipfile.ZIP_DEFLATED) as z:
    z.writestr("inner.zip", inner.getvalue())
open(d + "/notes.txt", "w").write("nothing to see\n")
"#;

const BOMB: &str = r#"
import sys, zipfile
with zipfile.ZipFile(sys.argv[1], "w", zipfile.ZIP_DEFLATED) as z:
    with z.open("zeros.bin", "w", force_zip64=True) as f:
        chunk = bytes(1 << 20)
        for _ in range(1024):
            f.write(chunk)
"#;

async fn python(script: &str, arg: &Path) -> Result<()> {
    run_cmd(
        Path::new("/usr/bin/python3"),
        &["-c".into(), script.into(), arg.display().to_string()],
        None,
    )
    .await?
    .ok()?;
    Ok(())
}

/// Writes `eicar.com`, `eicar.zip`, `eicar.tar.gz` (as `x/eicar.com`), `nested.zip` (its
/// `inner.zip` holding `eicar.com`) and the clean `notes.txt` into `dir`.
pub async fn eicar_samples(dir: &Path) -> Result<()> {
    python(MAKE, dir).await
}

/// Writes a zip of about 1 MiB holding a 1 GiB member of zeros at `path`.
pub async fn zip_bomb(path: &Path) -> Result<()> {
    python(BOMB, path).await
}
