//! The command words of a POSIX shell script, for checking that a script run under busybox
//! uses only applets that are linked (test-only).
//!
//! Owns: a small lexer that finds the first word of every simple command — at the start of a
//! line, after `;` `&` `&&` `|` `||` `(` `$(`, after the keywords `if then else elif while until
//! do !` and `{`, and after `exec` — inside `$(...)` and double quotes too, skipping
//! assignments, redirections, comments, `case` patterns, the words of `for ... in`, the shell's
//! keywords and builtins, and the functions the script defines.
//!
//! Must not: run the script, or pretend to be a full shell parser (no here-documents,
//! arithmetic or aliases; the probe uses none of them).

/// Keywords after which a command word is still expected.
const LEADING_KEYWORDS: &[&str] = &[
    "if", "then", "else", "elif", "while", "until", "do", "!", "{", "exec",
];

/// Keywords that end a compound command: the next word is not a command.
const CLOSING_KEYWORDS: &[&str] = &["fi", "done", "esac", "}"];

/// Builtins of busybox ash that need no applet (the ones that are also applets, like `echo`,
/// `printf`, `test` and `[`, are checked like commands).
const BUILTINS: &[&str] = &[
    ":", ".", "alias", "break", "cd", "continue", "eval", "exit", "export", "false", "getopts",
    "hash", "local", "read", "readonly", "return", "set", "shift", "trap", "true", "type",
    "ulimit", "umask", "unalias", "unset", "wait",
];

/// The commands `script` runs, in order, without keywords, builtins, assignments and the
/// functions it defines (a command word that is an expansion, like `$cmd`, is kept as is).
pub fn command_words(script: &str) -> Vec<String> {
    let chars: Vec<char> = script.chars().collect();
    let mut lexer = Lexer {
        chars: &chars,
        pos: 0,
        commands: Vec::new(),
        functions: Vec::new(),
    };
    lexer.list(false);
    let Lexer {
        commands,
        functions,
        ..
    } = lexer;
    commands
        .into_iter()
        .filter(|c| !functions.contains(c))
        .collect()
}

/// Where a `case` is: its patterns or the commands of one branch.
#[derive(Clone, Copy, PartialEq, Eq)]
enum CaseState {
    Pattern,
    Commands,
}

struct Lexer<'a> {
    chars: &'a [char],
    pos: usize,
    commands: Vec<String>,
    functions: Vec<String>,
}

impl Lexer<'_> {
    fn peek(&self, ahead: usize) -> Option<char> {
        self.chars.get(self.pos + ahead).copied()
    }

    /// Reads commands until the end, or (`nested`) until the `)` of a `$(` or `(`.
    fn list(&mut self, nested: bool) {
        let mut expect_command = true;
        let mut case_pending = false;
        let mut cases: Vec<CaseState> = Vec::new();
        while let Some(c) = self.peek(0) {
            let in_pattern = cases.last() == Some(&CaseState::Pattern);
            match c {
                ' ' | '\t' => self.pos += 1,
                '\\' if self.peek(1) == Some('\n') => self.pos += 2,
                '#' => {
                    while self.peek(0).is_some_and(|c| c != '\n') {
                        self.pos += 1;
                    }
                }
                '\n' => {
                    self.pos += 1;
                    if !in_pattern {
                        expect_command = true;
                    }
                }
                ';' => {
                    self.pos += 1;
                    if self.peek(0) == Some(';') {
                        self.pos += 1;
                        if let Some(state) = cases.last_mut() {
                            *state = CaseState::Pattern;
                        }
                    }
                    expect_command = true;
                }
                '&' | '|' => {
                    self.pos += 1;
                    if self.peek(0) == Some(c) {
                        self.pos += 1;
                    }
                    if !in_pattern {
                        expect_command = true;
                    }
                }
                '(' => {
                    self.pos += 1;
                    self.list(true);
                    expect_command = false;
                }
                ')' => {
                    self.pos += 1;
                    if in_pattern {
                        if let Some(state) = cases.last_mut() {
                            *state = CaseState::Commands;
                        }
                        expect_command = true;
                    } else if nested {
                        return;
                    }
                }
                '<' | '>' => self.redirection(),
                _ => {
                    let word = self.word();
                    if word.is_empty() {
                        // A character no rule above takes: step over it.
                        self.pos += 1;
                        continue;
                    }
                    if in_pattern {
                        if word == "esac" {
                            cases.pop();
                            expect_command = false;
                        }
                        continue;
                    }
                    if case_pending && word == "in" {
                        case_pending = false;
                        cases.push(CaseState::Pattern);
                        continue;
                    }
                    if !expect_command {
                        continue;
                    }
                    if word == "esac" {
                        cases.pop();
                    }
                    if word.chars().all(|c| c.is_ascii_digit())
                        && matches!(self.peek(0), Some('<' | '>'))
                    {
                        // A file descriptor before a redirection: `2>/dev/null`.
                        continue;
                    }
                    if LEADING_KEYWORDS.contains(&word.as_str()) || is_assignment(&word) {
                        continue;
                    }
                    expect_command = false;
                    if CLOSING_KEYWORDS.contains(&word.as_str()) || word == "for" {
                        continue;
                    }
                    if word == "case" {
                        case_pending = true;
                        continue;
                    }
                    if self.defines_function() {
                        self.functions.push(word);
                        expect_command = true;
                        continue;
                    }
                    if !BUILTINS.contains(&word.as_str()) {
                        self.commands.push(word);
                    }
                }
            }
        }
    }

    /// `<`, `>`, `>>`, `>&`, `<&`, `<>` and the word after it (the file or descriptor).
    fn redirection(&mut self) {
        self.pos += 1;
        if matches!(self.peek(0), Some('>' | '&')) {
            self.pos += 1;
        }
        while matches!(self.peek(0), Some(' ' | '\t')) {
            self.pos += 1;
        }
        self.word();
    }

    /// After a command word: whether `()` follows, making it a function definition.
    fn defines_function(&mut self) -> bool {
        let mut at = self.pos;
        while matches!(self.chars.get(at), Some(' ' | '\t')) {
            at += 1;
        }
        if self.chars.get(at) == Some(&'(') && self.chars.get(at + 1) == Some(&')') {
            self.pos = at + 2;
            return true;
        }
        false
    }

    /// One word, quotes removed; the commands of a `$(...)` in it are recorded.
    fn word(&mut self) -> String {
        let mut word = String::new();
        while let Some(c) = self.peek(0) {
            match c {
                ' ' | '\t' | '\n' | ';' | '&' | '|' | '(' | ')' | '<' | '>' => break,
                '\\' => {
                    if let Some(next) = self.peek(1) {
                        word.push(next);
                    }
                    self.pos += 2;
                }
                '\'' => {
                    self.pos += 1;
                    while let Some(c) = self.peek(0) {
                        self.pos += 1;
                        if c == '\'' {
                            break;
                        }
                        word.push(c);
                    }
                }
                '"' => {
                    self.pos += 1;
                    while let Some(c) = self.peek(0) {
                        if c == '"' {
                            self.pos += 1;
                            break;
                        }
                        if c == '\\' {
                            self.pos += 1;
                        } else if c == '$' && matches!(self.peek(1), Some('(' | '{')) {
                            word.push_str(&self.expansion());
                            continue;
                        }
                        if let Some(c) = self.peek(0) {
                            word.push(c);
                        }
                        self.pos += 1;
                    }
                }
                '$' if matches!(self.peek(1), Some('(' | '{')) => {
                    word.push_str(&self.expansion());
                }
                _ => {
                    word.push(c);
                    self.pos += 1;
                }
            }
        }
        word
    }

    /// `$(...)` (its commands recorded) or `${...}`, at `$`; returns the text it stands for in
    /// the word (`$(...)` or the parameter expansion as written).
    fn expansion(&mut self) -> String {
        if self.peek(1) == Some('(') {
            self.pos += 2;
            self.list(true);
            return "$(...)".to_owned();
        }
        let start = self.pos;
        while let Some(c) = self.peek(0) {
            self.pos += 1;
            if c == '}' {
                break;
            }
        }
        self.chars[start..self.pos].iter().collect()
    }
}

/// `NAME=value` (the value may be empty or quoted).
fn is_assignment(word: &str) -> bool {
    let Some((name, _)) = word.split_once('=') else {
        return false;
    };
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_first_word_of_every_simple_command() {
        let script = "#!/bin/sh\n\
            # a comment: mkfs here is not a command\n\
            export PATH=/bin\n\
            [ -c /dev/null ] || mount -t devtmpfs devtmpfs /dev 2>/dev/null\n\
            { echo mark >/dev/kmsg; } 2>/dev/null\n\
            if [ ! -t 1 ] && (: </dev/console) 2>/dev/null; then\n\
            \texec </dev/console >/dev/console 2>&1\n\
            fi\n\
            x=$(tr -d '\\r\\n' </run/x.json)\n\
            printf '%s\\n' \"$(cat /proc/cmdline)\" | head -n 1\n\
            for word in $(uname -a); do case $word in\n\
            \tKEY) value=$word ;;\n\
            \tprobe.data=*) [ -b \"${word#probe.data=}\" ] && dmesg ;;\n\
            \tesac; done </proc/mounts\n\
            while IFS='=' read -r k v; do sleep 1; done\n\
            helper() { ls /; }\n\
            helper\n\
            elif ! grep -qw f2fs /proc/filesystems; then umount /data; fi\n\
            while :; do sleep 3600; done\n";
        assert_eq!(
            command_words(script),
            [
                "[", "mount", "echo", "[", "tr", "printf", "cat", "head", "uname", "[", "dmesg",
                "sleep", "ls", "grep", "umount", "sleep"
            ]
        );
    }

    #[test]
    fn assignments_and_keywords_are_not_commands() {
        assert!(command_words("a= b=c\nif true; then :; fi\n").is_empty());
        assert_eq!(command_words("a=1 b=2 env\n"), ["env"]);
    }
}
