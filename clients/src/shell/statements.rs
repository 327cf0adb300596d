//! Splitting SQL text into statements on `;` outside quotes and comments.

/// Complete statements of `text` (each without its `;`), and the unfinished rest.
pub(crate) fn take_complete(text: &str) -> (Vec<String>, String) {
    let mut statements = Vec::new();
    let mut current = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' | '"' => {
                current.push(c);
                for d in chars.by_ref() {
                    current.push(d);
                    if d == c {
                        break;
                    }
                }
            }
            '-' if chars.peek() == Some(&'-') => {
                for d in chars.by_ref() {
                    if d == '\n' {
                        current.push('\n');
                        break;
                    }
                }
            }
            '/' if chars.peek() == Some(&'*') => {
                let mut prev = ' ';
                for d in chars.by_ref() {
                    if prev == '*' && d == '/' {
                        break;
                    }
                    prev = d;
                }
            }
            ';' => {
                if !current.trim().is_empty() {
                    statements.push(current.trim().to_owned());
                }
                current.clear();
            }
            _ => current.push(c),
        }
    }
    (
        statements,
        if current.trim().is_empty() {
            String::new()
        } else {
            current
        },
    )
}

/// Every statement of a script (a last statement without `;` included).
pub(crate) fn split(text: &str) -> Vec<String> {
    let (mut statements, rest) = take_complete(text);
    if !rest.trim().is_empty() {
        statements.push(rest.trim().to_owned());
    }
    statements
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_outside_quotes_and_comments() {
        let s = split("SELECT ';' AS x; -- a; comment\nSELECT \"a;b\" FROM t /* ; */; SELECT 3");
        assert_eq!(
            s,
            vec!["SELECT ';' AS x", "SELECT \"a;b\" FROM t", "SELECT 3"]
        );
        let (done, rest) = take_complete("SELECT 1;\nSELECT\n");
        assert_eq!(done, vec!["SELECT 1"]);
        assert_eq!(rest.trim(), "SELECT");
    }
}
