//! Shell commands that `exec` their worker, so the worker is the process the
//! engine started (its pid, its signals) rather than a child of `sh`. One
//! rule for the engine's `ProcessSpec::shell` and the package format's
//! `Command::argv` (neither crate depends on the other). Pure: no IO.

/// `script` with `exec` put before its command word when the script is one
/// simple command (`python3 fn.py`, `PYTHONPATH=sdk python3 fn.py 2>&1`):
/// `sh -c` then replaces itself with the worker. Anything else (lists,
/// pipelines, `&&`, background jobs, subshells, compound commands, command
/// substitutions, shell builtins, several lines) is returned unchanged:
/// there the shell stays, and signalling the process group still reaches
/// the worker.
pub fn exec_script(script: &str) -> String {
    match command_word(script) {
        Some(at) => format!("{}exec {}", &script[..at], &script[at..]),
        None => script.to_owned(),
    }
}

/// First words that `exec` cannot run: reserved words and builtins.
const NOT_PROGRAMS: &[&str] = &[
    "!", "{", "}", "[[", "case", "do", "done", "elif", "else", "esac", "fi", "for", "function",
    "if", "in", "select", "then", "time", "until", "while", ".", ":", "alias", "break", "cd",
    "command", "continue", "eval", "exec", "exit", "export", "local", "readonly", "return", "set",
    "shift", "source", "times", "trap", "ulimit", "umask", "unset", "wait",
];

/// Byte offset of the command word (after `NAME=value` assignments) of a
/// script that is one simple command; `None` for anything else.
fn command_word(script: &str) -> Option<usize> {
    let b = script.as_bytes();
    let mut words = Vec::new();
    let mut in_word = false;
    let mut quote: Option<u8> = None;
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let next = b.get(i + 1).copied();
        match quote {
            Some(b'\'') if c == b'\'' => quote = None,
            Some(b'\'') => {}
            Some(_) => match c {
                b'\\' => i += 1,
                b'"' => quote = None,
                b'`' => return None,
                b'$' if next == Some(b'(') => return None,
                _ => {}
            },
            None => {
                if !in_word && !matches!(c, b' ' | b'\t') {
                    if c == b'#' {
                        // A comment to the end of the line; a line after it
                        // is another command.
                        if b[i..].contains(&b'\n') {
                            return None;
                        }
                        break;
                    }
                    in_word = true;
                    words.push(i);
                }
                match c {
                    b' ' | b'\t' => in_word = false,
                    b'\\' if next == Some(b'\n') => return None,
                    b'\\' => i += 1,
                    b'\'' | b'"' => quote = Some(c),
                    b'\n' | b'\r' | b';' | b'|' | b'(' | b')' | b'`' => return None,
                    b'<' if next == Some(b'<') => return None,
                    // `>&2` and `<&0` are redirections; any other `&` is a
                    // control operator.
                    b'&' if !(i > 0 && matches!(b[i - 1], b'>' | b'<')) => return None,
                    b'$' if next == Some(b'(') => return None,
                    _ => {}
                }
            }
        }
        i += 1;
    }
    if quote.is_some() {
        return None;
    }
    let at = words
        .into_iter()
        .find(|&start| !is_assignment(&b[start..]))?;
    let word = script[at..].split([' ', '\t']).next().unwrap_or_default();
    (!NOT_PROGRAMS.contains(&word)).then_some(at)
}

/// Whether a word starts with `NAME=` (a variable assignment).
fn is_assignment(word: &[u8]) -> bool {
    let name = word
        .iter()
        .take_while(|c| c.is_ascii_alphanumeric() || **c == b'_')
        .count();
    name > 0 && !word[0].is_ascii_digit() && word.get(name) == Some(&b'=')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(script: &str, expected: &str) {
        assert_eq!(exec_script(script), expected, "script {script:?}");
    }

    #[test]
    fn one_simple_command_is_execed() {
        check("python3 fn.py", "exec python3 fn.py");
        check(
            "  python3 fn.py --x 'a b'",
            "  exec python3 fn.py --x 'a b'",
        );
        check(
            "PYTHONPATH=sdk/python python3 fn.py",
            "PYTHONPATH=sdk/python exec python3 fn.py",
        );
        check("A='x y' B=2 ./run", "A='x y' B=2 exec ./run");
        check("python3 fn.py 2>&1 >log", "exec python3 fn.py 2>&1 >log");
        check(
            "python3 'a;b' \"$HOME/x\" \\;",
            "exec python3 'a;b' \"$HOME/x\" \\;",
        );
        check(
            "python3 ${APP}.py # the worker",
            "exec python3 ${APP}.py # the worker",
        );
        check("sleep 30", "exec sleep 30");
    }

    #[test]
    fn anything_else_is_left_alone() {
        for script in [
            "exec python3 fn.py",
            "echo boom >&2; exit 3",
            "python3 a.py && python3 b.py",
            "python3 a.py || true",
            "a | b",
            "python3 fn.py &",
            "(python3 fn.py)",
            "python3 a.py\npython3 b.py",
            "python3 a.py # first\npython3 b.py",
            "python3 a.py \\\n --x",
            "if true; then a; fi",
            "{ a; }",
            "X=$(cat f) python3 fn.py",
            "python3 `which x`",
            "python3 \"$(pwd)/fn.py\"",
            "cat <<EOF",
            "cd /tmp",
            "exit 3",
            "'unterminated",
            "# only a comment",
            "A=1",
            "",
        ] {
            check(script, script);
        }
    }
}
