//! Offline speech with `espeak-ng` (the Debian package of that name), when it is installed.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use async_trait::async_trait;
use tokio::io::AsyncWriteExt;

use super::{Audio, TextToSpeech, TtsError};

#[derive(Debug, Clone)]
pub struct Espeak {
    program: PathBuf,
}

impl Espeak {
    /// `espeak-ng` from `PATH`, if installed.
    pub fn detect() -> Option<Self> {
        let path = std::env::var_os("PATH")?;
        std::env::split_paths(&path)
            .map(|dir| dir.join("espeak-ng"))
            .find(|candidate| is_executable(candidate))
            .map(|program| Self { program })
    }
}

fn is_executable(path: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        path.metadata()
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    }
    #[cfg(not(unix))]
    {
        path.is_file()
    }
}

#[async_trait]
impl TextToSpeech for Espeak {
    fn id(&self) -> &str {
        "espeak-ng"
    }

    async fn synthesize(&self, text: &str) -> Result<Audio, TtsError> {
        // Text goes through stdin, never the command line, so nothing in it is interpreted.
        let mut child = tokio::process::Command::new(&self.program)
            .args(["--stdout", "--stdin", "-s", "150"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| TtsError::Permanent(format!("starting espeak-ng: {e}")))?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin
                .write_all(text.as_bytes())
                .await
                .map_err(|e| TtsError::Transient(format!("writing to espeak-ng: {e}")))?;
        }
        let output = child
            .wait_with_output()
            .await
            .map_err(|e| TtsError::Transient(format!("espeak-ng: {e}")))?;
        if !output.status.success() || output.stdout.is_empty() {
            return Err(TtsError::Permanent(format!(
                "espeak-ng exited with {}: {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            )));
        }
        Ok(Audio {
            bytes: output.stdout,
            extension: "wav",
        })
    }
}
