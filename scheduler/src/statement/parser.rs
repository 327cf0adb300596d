//! The token-level reading of a statement (keywords, names, values, strings, parenthesised
//! lists, syntax errors with line and column) and the `CREATE … VIEW` grammar, used by
//! [`super::parse`].

use super::Statement;
use super::lexer::{Token, lex};
use crate::error::{Result, SchedulerError};

/// A statement's tokens and the position reached.
pub(super) struct Parser<'a> {
    pub(super) sql: &'a str,
    pub(super) tokens: Vec<(Token, usize)>,
    pub(super) pos: usize,
}

impl<'a> Parser<'a> {
    pub(super) fn new(sql: &'a str) -> Self {
        Self {
            sql,
            tokens: lex(sql),
            pos: 0,
        }
    }
    pub(super) fn keyword(&mut self, kw: &str) -> bool {
        match self.tokens.get(self.pos) {
            Some((Token::Word(w), _)) if w.eq_ignore_ascii_case(kw) => {
                self.pos += 1;
                true
            }
            _ => false,
        }
    }

    pub(super) fn symbol(&mut self, s: char) -> bool {
        match self.tokens.get(self.pos) {
            Some((Token::Symbol(c), _)) if *c == s => {
                self.pos += 1;
                true
            }
            _ => false,
        }
    }

    pub(super) fn at_end(&self) -> bool {
        self.tokens[self.pos..]
            .iter()
            .all(|(t, _)| *t == Token::Symbol(';'))
    }

    pub(super) fn error(&self, expected: &str) -> SchedulerError {
        let offset = self
            .tokens
            .get(self.pos)
            .map(|(_, o)| *o)
            .unwrap_or(self.sql.len());
        let before = &self.sql[..self
            .sql
            .char_indices()
            .nth(offset)
            .map(|(b, _)| b)
            .unwrap_or(self.sql.len())];
        let line = before.matches('\n').count() as u64 + 1;
        let column = before
            .rsplit('\n')
            .next()
            .map(|l| l.chars().count())
            .unwrap_or(0) as u64
            + 1;
        let found = self
            .tokens
            .get(self.pos)
            .map(|(t, _)| format!("{t:?}"))
            .unwrap_or_else(|| "end of statement".into());
        SchedulerError::SqlSyntax {
            line,
            column,
            message: format!("expected {expected}, found {found}"),
        }
    }

    /// `a.b."C"` → ["a", "b", "C"] (unquoted parts lower-cased, as Trino does).
    pub(super) fn name(&mut self) -> Result<Vec<String>> {
        let mut parts = Vec::new();
        loop {
            match self.tokens.get(self.pos) {
                Some((Token::Word(w), _)) => parts.push(w.to_lowercase()),
                Some((Token::Quoted(q), _)) => parts.push(q.clone()),
                _ => return Err(self.error("a name")),
            }
            self.pos += 1;
            if !self.symbol('.') {
                return Ok(parts);
            }
        }
    }

    pub(super) fn like(&mut self) -> Result<Option<String>> {
        if !self.keyword("LIKE") {
            return Ok(None);
        }
        match self.tokens.get(self.pos) {
            Some((Token::Str(s), _)) => {
                let s = s.clone();
                self.pos += 1;
                Ok(Some(s))
            }
            _ => Err(self.error("a string pattern")),
        }
    }

    pub(super) fn value(&mut self) -> Result<String> {
        let value = match self.tokens.get(self.pos) {
            Some((Token::Str(s), _)) => s.clone(),
            Some((Token::Word(w), _)) => w.clone(),
            Some((Token::Symbol('-'), _)) => {
                self.pos += 1;
                return self.value().map(|v| format!("-{v}"));
            }
            _ => return Err(self.error("a value")),
        };
        self.pos += 1;
        // Numbers such as 1.5 lex as word '.' word.
        if self.symbol('.') {
            let rest = self.value()?;
            return Ok(format!("{value}.{rest}"));
        }
        Ok(value)
    }

    /// A string literal.
    pub(super) fn string(&mut self) -> Result<String> {
        match self.tokens.get(self.pos) {
            Some((Token::Str(s), _)) => {
                let s = s.clone();
                self.pos += 1;
                Ok(s)
            }
            _ => Err(self.error("a string")),
        }
    }

    /// The text from the current token to the end of the statement.
    pub(super) fn rest(&self) -> String {
        let offset = self
            .tokens
            .get(self.pos)
            .map(|(_, o)| *o)
            .unwrap_or(self.sql.len());
        self.sql.chars().skip(offset).collect()
    }

    /// The text inside a parenthesised list starting at the current `(`, which is consumed
    /// with its closing `)`.
    pub(super) fn parenthesised(&mut self) -> Result<String> {
        let Some((Token::Symbol('('), open)) = self.tokens.get(self.pos).cloned() else {
            return Err(self.error("'('"));
        };
        let mut depth = 0;
        while let Some((token, offset)) = self.tokens.get(self.pos).cloned() {
            self.pos += 1;
            match token {
                Token::Symbol('(') => depth += 1,
                Token::Symbol(')') => {
                    depth -= 1;
                    if depth == 0 {
                        return Ok(self
                            .sql
                            .chars()
                            .skip(open + 1)
                            .take(offset - open - 1)
                            .collect());
                    }
                }
                _ => {}
            }
        }
        Err(self.error("')'"))
    }

    /// `CREATE [OR REPLACE] [MATERIALIZED] VIEW …` after `CREATE`; `None` when the statement
    /// creates something else.
    pub(super) fn create_view(&mut self) -> Result<Option<Statement>> {
        let start = self.pos;
        let or_replace = self.keyword("OR") && self.keyword("REPLACE");
        if !or_replace {
            self.pos = start;
        }
        let materialized = self.keyword("MATERIALIZED");
        if !self.keyword("VIEW") {
            self.pos = start;
            return Ok(None);
        }
        let mut if_not_exists = false;
        if materialized && self.keyword("IF") {
            if !(self.keyword("NOT") && self.keyword("EXISTS")) {
                return Err(self.error("NOT EXISTS"));
            }
            if_not_exists = true;
        }
        let name = self.name()?;
        let (mut comment, mut invoker, mut properties) = (None, false, None);
        loop {
            if self.keyword("COMMENT") {
                comment = Some(self.string()?);
            } else if !materialized && self.keyword("SECURITY") {
                invoker = if self.keyword("INVOKER") {
                    true
                } else if self.keyword("DEFINER") {
                    false
                } else {
                    return Err(self.error("DEFINER or INVOKER"));
                };
            } else if materialized && self.keyword("WITH") {
                properties = Some(self.parenthesised()?);
            } else {
                break;
            }
        }
        if !self.keyword("AS") {
            return Err(self.error("AS"));
        }
        let query = self.rest();
        if query.trim().is_empty() {
            return Err(self.error("a query"));
        }
        Ok(Some(if materialized {
            Statement::CreateMaterializedView {
                name,
                or_replace,
                if_not_exists,
                comment,
                properties,
                query,
            }
        } else {
            Statement::CreateView {
                name,
                or_replace,
                comment,
                invoker,
                query,
            }
        }))
    }

    pub(super) fn end<T>(&self, statement: T) -> Result<T> {
        if self.at_end() {
            Ok(statement)
        } else {
            Err(self.error("end of statement"))
        }
    }
}
