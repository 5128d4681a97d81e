//! Checks on the program to run, before anything is spawned: each problem LD_PRELOAD would
//! hit silently becomes one clear line.

use std::fs;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error("cannot find program '{0}': no such file in the current directory or on PATH")]
    NotFound(String),
    #[error("'{0}' is a directory, not a program")]
    Directory(String),
    #[error(
        "'{0}' is not executable (chmod +x it, or name the interpreter: fencepost run -- sh {0})"
    )]
    NotExecutable(String),
    #[error("'{0}' is setuid/setgid: the loader ignores LD_PRELOAD for it; check a copy without the setuid bit")]
    Setuid(String),
    #[error(
        "'{0}' is statically linked: LD_PRELOAD cannot reach it; link it dynamically to check it"
    )]
    Static(String),
    #[error("'{0}' is not an x86-64 program (fencepost checks x86-64 Linux executables)")]
    WrongArch(String),
    #[error("'{0}' is neither an ELF executable nor a script with a #! line")]
    NotAProgram(String),
    #[error("'{path}' names interpreter '{interp}', which does not exist")]
    MissingInterpreter { path: String, interp: String },
    #[error("cannot read '{0}': {1}")]
    Io(String, std::io::Error),
}

/// Finds `prog` as execvp would and checks that fencepost can trace it.
pub fn resolve(prog: &str) -> Result<PathBuf, TargetError> {
    let path = if prog.contains('/') {
        PathBuf::from(prog)
    } else {
        std::env::var_os("PATH")
            .and_then(|paths| {
                std::env::split_paths(&paths)
                    .map(|d| d.join(prog))
                    .find(|p| p.is_file())
            })
            .ok_or_else(|| TargetError::NotFound(prog.to_string()))?
    };
    check(&path, prog, 0)?;
    Ok(path)
}

fn check(path: &Path, shown: &str, depth: u32) -> Result<(), TargetError> {
    let meta = fs::metadata(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => TargetError::NotFound(shown.to_string()),
        _ => TargetError::Io(shown.to_string(), e),
    })?;
    if meta.is_dir() {
        return Err(TargetError::Directory(shown.to_string()));
    }
    let mode = meta.permissions().mode();
    if mode & 0o111 == 0 {
        return Err(TargetError::NotExecutable(shown.to_string()));
    }
    if mode & 0o6000 != 0 {
        return Err(TargetError::Setuid(shown.to_string()));
    }
    let mut head = [0u8; 4096];
    let n = fs::File::open(path)
        .and_then(|mut f| f.read(&mut head))
        .map_err(|e| TargetError::Io(shown.to_string(), e))?;
    let head = &head[..n];
    if head.starts_with(b"\x7fELF") {
        return check_elf(path, shown);
    }
    if let Some(line) = head.strip_prefix(b"#!") {
        let line = line.split(|&c| c == b'\n').next().unwrap_or(b"");
        let line = String::from_utf8_lossy(line);
        let interp = line.split_whitespace().next().unwrap_or("");
        if interp.is_empty() || depth > 3 {
            return Err(TargetError::NotAProgram(shown.to_string()));
        }
        if !Path::new(interp).exists() {
            return Err(TargetError::MissingInterpreter {
                path: shown.to_string(),
                interp: interp.to_string(),
            });
        }
        return check(Path::new(interp), interp, depth + 1);
    }
    Err(TargetError::NotAProgram(shown.to_string()))
}

fn check_elf(path: &Path, shown: &str) -> Result<(), TargetError> {
    use object::Object;
    let data = fs::read(path).map_err(|e| TargetError::Io(shown.to_string(), e))?;
    let file =
        object::File::parse(&*data).map_err(|_| TargetError::NotAProgram(shown.to_string()))?;
    if file.architecture() != object::Architecture::X86_64 {
        return Err(TargetError::WrongArch(shown.to_string()));
    }
    let has_interp = match &file {
        object::File::Elf64(elf) => {
            use object::read::elf::ProgramHeader;
            let endian = elf.endian();
            elf.elf_program_headers()
                .iter()
                .any(|ph| ph.p_type(endian) == object::elf::PT_INTERP)
        }
        _ => false,
    };
    if !has_interp {
        return Err(TargetError::Static(shown.to_string()));
    }
    Ok(())
}
