//! The committed `python/tollgate/_bindings.py` must be exactly what this test generates from
//! `include/tollgate.h` (itself checked against `ffi/src` by `tests/header.rs`): the constants,
//! the enums, the structs, the callback type and every function's ctypes signature.
//!
//! `TOLLGATE_BLESS=1 cargo test -p tollgate-ffi --test python_bindings` writes the fresh module
//! instead of comparing.
//!
//! The generator reads the header as cbindgen lays it out (one declaration per statement, doc
//! comments in `/** */`), and stops with the declaration it does not know how to translate, so a
//! new kind of C type is taught here rather than translated wrongly.

use std::collections::BTreeSet;
mod common;

use std::path::{Path, PathBuf};

fn manifest_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn header_path() -> PathBuf {
    manifest_dir().join("../include/tollgate.h")
}

fn committed_bindings() -> PathBuf {
    manifest_dir().join("../python/tollgate/_bindings.py")
}

const LINE_LEN: usize = 100;

/// One declaration of the header, with the first sentence of its doc comment.
enum Item {
    Constant {
        name: String,
        value: String,
    },
    Enum {
        c_name: String,
        doc: String,
        variants: Vec<(String, String)>,
    },
    Opaque {
        c_name: String,
    },
    Struct {
        c_name: String,
        doc: String,
        fields: Vec<(String, String)>,
    },
    Callback {
        c_name: String,
        doc: String,
        ret: String,
        params: Vec<String>,
    },
    Function {
        name: String,
        ret: String,
        params: Vec<String>,
    },
}

/// The enum or struct whose body `parse` is reading: its name, its doc and its members (variant
/// and value, or field and type).
struct Body {
    is_enum: bool,
    c_name: String,
    doc: String,
    members: Vec<(String, String)>,
}

/// The first sentence of a doc comment, on one line.
fn first_sentence(doc: &[String]) -> String {
    let text = doc.join(" ");
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match text.find(". ") {
        Some(end) => text[..=end].to_owned(),
        None => text,
    }
}

/// A C type without its spaces around `*`: `const char *const *` is `const char*const*`.
fn normalise(ty: &str) -> String {
    let ty = ty.split_whitespace().collect::<Vec<_>>().join(" ");
    ty.replace(" *", "*").replace("* ", "*")
}

/// Splits `const struct tg_engine *engine` into its type and its name.
fn split_declarator(decl: &str) -> (String, String) {
    let decl = decl.trim();
    let at = decl
        .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .map_or(0, |i| i + 1);
    (normalise(&decl[..at]), decl[at..].to_owned())
}

/// The parameter types of `(a, b)`; `(void)` has none.
fn parameter_types(list: &str) -> Vec<String> {
    let list = list.trim();
    if list == "void" || list.is_empty() {
        return Vec::new();
    }
    list.split(',').map(|p| split_declarator(p).0).collect()
}

fn parse(header: &str) -> Vec<Item> {
    let mut items = Vec::new();
    let mut doc: Vec<String> = Vec::new();
    let mut in_comment = false;
    let mut statement = String::new();
    let mut body: Option<Body> = None;
    for line in header.lines() {
        let trimmed = line.trim();
        if in_comment {
            if trimmed.ends_with("*/") {
                in_comment = false;
            } else {
                doc.push(trimmed.trim_start_matches('*').trim().to_owned());
            }
            continue;
        }
        if trimmed.starts_with("/*") {
            doc.clear();
            in_comment = !trimmed.ends_with("*/");
            continue;
        }
        if trimmed.is_empty() || trimmed.starts_with("//") {
            continue;
        }
        if let Some(define) = trimmed.strip_prefix("#define ") {
            if let Some((name, value)) = define.split_once(' ') {
                items.push(Item::Constant {
                    name: name.to_owned(),
                    value: value.trim().to_owned(),
                });
            }
            continue;
        }
        if trimmed.starts_with('#') || trimmed == "extern \"C\" {" || trimmed.starts_with("}  //") {
            continue;
        }
        if let Some(Body {
            is_enum,
            c_name,
            doc: item_doc,
            members,
        }) = body.as_mut()
        {
            if let Some(end) = trimmed.strip_prefix("} ") {
                assert_eq!(end, format!("{c_name};"), "the end of `{c_name}`");
                let (c_name, doc, members) =
                    (c_name.clone(), item_doc.clone(), std::mem::take(members));
                items.push(if *is_enum {
                    Item::Enum {
                        c_name,
                        doc,
                        variants: members,
                    }
                } else {
                    Item::Struct {
                        c_name,
                        doc,
                        fields: members,
                    }
                });
                body = None;
            } else if *is_enum {
                let (name, value) = trimmed
                    .trim_end_matches(',')
                    .split_once(" = ")
                    .unwrap_or_else(|| panic!("an enum variant with a value: `{trimmed}`"));
                members.push((name.to_owned(), value.to_owned()));
            } else {
                let field = trimmed
                    .strip_suffix(';')
                    .unwrap_or_else(|| panic!("a struct field on one line: `{trimmed}`"));
                let (ty, name) = match field.strip_suffix(']') {
                    Some(array) => {
                        let (declarator, len) = array.split_once('[').unwrap();
                        let (ty, name) = split_declarator(declarator);
                        (format!("{ty}[{len}]"), name)
                    }
                    None => split_declarator(field),
                };
                members.push((name, ty));
            }
            continue;
        }
        for (keyword, is_enum) in [("typedef enum ", true), ("typedef struct ", false)] {
            if let Some(name) = trimmed
                .strip_prefix(keyword)
                .and_then(|rest| rest.strip_suffix(" {"))
            {
                body = Some(Body {
                    is_enum,
                    c_name: name.to_owned(),
                    doc: first_sentence(&doc),
                    members: Vec::new(),
                });
            }
        }
        if body.is_some() {
            continue;
        }
        statement.push_str(trimmed);
        statement.push(' ');
        if !trimmed.ends_with(';') {
            continue;
        }
        let text = std::mem::take(&mut statement);
        let text = text.trim().trim_end_matches(';');
        if let Some(rest) = text.strip_prefix("typedef struct ") {
            let (c_name, alias) = rest.split_once(' ').unwrap();
            assert_eq!(c_name, alias, "an opaque struct typedef: `{text}`");
            items.push(Item::Opaque {
                c_name: c_name.to_owned(),
            });
        } else if let Some(rest) = text.strip_prefix("typedef ") {
            // typedef void (*tg_event_callback)(const struct tg_event *event, void *user_data)
            let (ret, rest) = rest
                .split_once("(*")
                .unwrap_or_else(|| panic!("a function pointer typedef: `{text}`"));
            let (c_name, params) = rest.split_once(")(").unwrap();
            items.push(Item::Callback {
                c_name: c_name.to_owned(),
                doc: first_sentence(&doc),
                ret: normalise(ret),
                params: parameter_types(params.strip_suffix(')').unwrap()),
            });
        } else {
            let (declarator, params) = text
                .split_once('(')
                .unwrap_or_else(|| panic!("a function declaration: `{text}`"));
            let (ret, name) = split_declarator(declarator);
            items.push(Item::Function {
                name,
                ret,
                params: parameter_types(params.strip_suffix(')').unwrap()),
            });
        }
    }
    assert!(
        body.is_none() && statement.trim().is_empty(),
        "the header ends mid-declaration"
    );
    items
}

/// `tg_usage_v2` is `UsageV2`, `tg_event_callback` is `EventCallback`.
fn class_name(c_name: &str) -> String {
    c_name
        .trim_start_matches("tg_")
        .split('_')
        .map(|word| {
            let mut chars = word.chars();
            chars.next().map_or(String::new(), |first| {
                first.to_ascii_uppercase().to_string() + chars.as_str()
            })
        })
        .collect()
}

/// What the header declares, by kind, for translating types.
struct Names {
    enums: BTreeSet<String>,
    opaque: BTreeSet<String>,
    structs: BTreeSet<String>,
    callbacks: BTreeSet<String>,
}

impl Names {
    fn of(items: &[Item]) -> Names {
        let mut names = Names {
            enums: BTreeSet::new(),
            opaque: BTreeSet::new(),
            structs: BTreeSet::new(),
            callbacks: BTreeSet::new(),
        };
        for item in items {
            match item {
                Item::Enum { c_name, .. } => names.enums.insert(c_name.clone()),
                Item::Opaque { c_name } => names.opaque.insert(c_name.clone()),
                Item::Struct { c_name, .. } => names.structs.insert(c_name.clone()),
                Item::Callback { c_name, .. } => names.callbacks.insert(c_name.clone()),
                _ => false,
            };
        }
        names
    }

    /// The ctypes type of a C type (normalised), as Python source.
    fn ctype(&self, ty: &str) -> String {
        let scalar = |ty: &str| {
            Some(match ty {
                "bool" => "c_bool",
                "uint32_t" => "c_uint32",
                "uint64_t" => "c_uint64",
                "int64_t" => "c_int64",
                "size_t" => "c_size_t",
                _ => return None,
            })
        };
        let bare = ty.trim_start_matches("const ");
        let enum_name = bare.trim_start_matches("enum ");
        if let Some(c) = scalar(bare) {
            return c.to_owned();
        }
        // Enums are passed and stored as 32-bit unsigned numbers.
        if self.enums.contains(enum_name) {
            return "c_uint32".to_owned();
        }
        match ty {
            "const char*" => return "c_char_p".to_owned(),
            // Strings the library allocates are read through `void *`, so that the same address
            // can be handed back to `tg_string_free`.
            "char*" | "void*" => return "c_void_p".to_owned(),
            "char**" => return "POINTER(c_void_p)".to_owned(),
            "const char*const*" => return "POINTER(c_char_p)".to_owned(),
            _ => {}
        }
        // A callback is passed as its address (NULL removes it).
        if self.callbacks.contains(bare) {
            return "c_void_p".to_owned();
        }
        if let Some(pointee) = ty.strip_prefix("const ").and_then(|t| t.strip_suffix('*')) {
            // An input array of numbers: the address of the caller's buffer.
            if scalar(pointee).is_some() {
                return "c_void_p".to_owned();
            }
        }
        if let Some(pointee) = bare.strip_suffix('*') {
            if let Some(c) = scalar(pointee) {
                return format!("POINTER({c})");
            }
            if let Some(name) = pointee.strip_prefix("struct ") {
                if self.opaque.contains(name) {
                    return "c_void_p".to_owned();
                }
                if self.structs.contains(name) {
                    return format!("POINTER({})", class_name(name));
                }
            }
            if let Some(name) = pointee
                .strip_prefix("struct ")
                .and_then(|p| p.strip_suffix('*'))
            {
                if self.opaque.contains(name) {
                    return "POINTER(c_void_p)".to_owned();
                }
            }
        }
        if let Some(name) = ty.strip_prefix("struct ") {
            if self.structs.contains(name) {
                return class_name(name);
            }
        }
        if let Some((element, len)) = ty.strip_suffix(']').and_then(|t| t.split_once('[')) {
            if element == "char" {
                return format!("c_char * {len}");
            }
        }
        panic!("no ctypes translation for the C type `{ty}`: teach tests/python_bindings.rs");
    }

    /// The Python type of what a function returns.
    fn python_return(&self, ty: &str) -> &'static str {
        match self.ctype(ty).as_str() {
            "c_uint32" => "int",
            "c_char_p" => "Optional[bytes]",
            _ => panic!("no Python type for a function returning `{ty}`"),
        }
    }
}

/// Python source, `text` wrapped at `width` after `indent`, as lines.
fn wrap(text: &str, indent: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && indent.len() + line.len() + 1 + word.len() > width {
            lines.push(format!("{indent}{line}"));
            line.clear();
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    lines.push(format!("{indent}{line}"));
    lines
}

/// `doc` after `c_name` and a colon, so with a small first letter.
fn after_colon(c_name: &str, doc: &str) -> String {
    let mut chars = doc.chars();
    let first = chars.next().map(|c| c.to_ascii_lowercase());
    format!(
        "``{c_name}``: {}{}",
        first.unwrap_or_default(),
        chars.as_str()
    )
}

fn docstring(out: &mut String, c_name: &str, doc: &str) {
    let text = after_colon(c_name, doc);
    let mut lines = wrap(&format!("\"\"\"{text}\"\"\""), "    ", LINE_LEN);
    if lines.len() > 1 {
        lines = wrap(&format!("\"\"\"{text}"), "    ", LINE_LEN);
        lines.push("    \"\"\"".to_owned());
    }
    for line in lines {
        out.push_str(&line);
        out.push('\n');
    }
}

/// `tuple` as Python source, one element a line when it does not fit on one.
fn tuple(elements: &[String], indent: &str) -> String {
    match elements {
        [] => "()".to_owned(),
        [one] => format!("({one},)"),
        _ => {
            let one_line = format!("({})", elements.join(", "));
            // One line, with the comma after it.
            if indent.len() + one_line.len() < LINE_LEN {
                return one_line;
            }
            let inner = format!("{indent}    ");
            let mut text = "(\n".to_owned();
            for element in elements {
                text.push_str(&format!("{inner}{element},\n"));
            }
            text.push_str(&format!("{indent})"));
            text
        }
    }
}

const PREAMBLE: &str = r#""""The C ABI of ``include/tollgate.h`` for ctypes: its constants, enums, structs, callback
type, and every function declared on the loaded library with its argument and result types.

Generated from the header by ``ffi/tests/python_bindings.rs``, which fails when this file is
stale; do not edit it. Regenerate it with:

    TOLLGATE_BLESS=1 cargo test -p tollgate-ffi --test python_bindings

How C types become ctypes: enums are ``c_uint32``; opaque handles (``struct tg_engine *``) are
``c_void_p`` and their out-parameters ``POINTER(c_void_p)``; strings the library allocates
(``char **``) are read through ``void *``, so that the same address can be handed back to
``tg_string_free``; input arrays of numbers (``const uint64_t *``) and callbacks are passed as
addresses (``c_void_p``). ``_ffi.declare`` loads each function.
"""

"#;

fn generate(header: &str) -> String {
    let items = parse(header);
    let names = Names::of(&items);
    let mut body = String::new();
    let mut in_functions = false;
    for item in &items {
        match item {
            Item::Constant { name, value } => {
                let line = format!("{name} = {value}\n");
                match value.strip_prefix('(').and_then(|v| v.strip_suffix(')')) {
                    Some(inner) if line.len() > LINE_LEN => {
                        body.push_str(&format!("{name} = (\n    {inner}\n)\n"));
                    }
                    _ => body.push_str(&line),
                }
            }
            Item::Enum {
                c_name,
                doc,
                variants,
            } => {
                let common = variants
                    .iter()
                    .map(|(name, _)| name.as_str())
                    .reduce(|a, b| {
                        let len = a.bytes().zip(b.bytes()).take_while(|(x, y)| x == y).count();
                        &a[..len]
                    })
                    .unwrap_or("");
                let prefix = &common[..common.rfind('_').map_or(0, |i| i + 1)];
                body.push_str(&format!(
                    "\n\nclass {}(enum.IntEnum):\n",
                    class_name(c_name)
                ));
                docstring(&mut body, c_name, doc);
                body.push('\n');
                for (name, value) in variants {
                    body.push_str(&format!("    {} = {value}\n", &name[prefix.len()..]));
                }
            }
            Item::Opaque { .. } => {}
            Item::Struct {
                c_name,
                doc,
                fields,
            } => {
                body.push_str(&format!("\n\nclass {}(Structure):\n", class_name(c_name)));
                docstring(&mut body, c_name, doc);
                body.push_str("\n    _fields_ = [\n");
                for (name, ty) in fields {
                    body.push_str(&format!("        (\"{name}\", {}),\n", names.ctype(ty)));
                }
                body.push_str("    ]\n");
            }
            Item::Callback {
                c_name,
                doc,
                ret,
                params,
            } => {
                let ret = if ret == "void" {
                    "None".to_owned()
                } else {
                    names.ctype(ret)
                };
                let mut types = vec![ret];
                types.extend(params.iter().map(|p| names.ctype(p)));
                body.push_str("\n\n");
                for line in wrap(&after_colon(c_name, doc), "#: ", LINE_LEN) {
                    body.push_str(&line);
                    body.push('\n');
                }
                body.push_str(&format!(
                    "{} = CFUNCTYPE({})\n",
                    class_name(c_name),
                    types.join(", ")
                ));
            }
            Item::Function { name, ret, params } => {
                if !in_functions {
                    body.push_str("\n\n");
                    in_functions = true;
                }
                let (restype, python) = if ret == "void" {
                    ("None".to_owned(), "None")
                } else {
                    (names.ctype(ret), names.python_return(ret))
                };
                let args: Vec<String> = params.iter().map(|p| names.ctype(p)).collect();
                let head = format!("{name}: Callable[..., {python}] = declare(");
                let one_line = format!("{head}\"{name}\", {restype}, {})", tuple(&args, ""));
                let arguments = format!("    \"{name}\", {restype}, {}", tuple(&args, ""));
                if one_line.len() <= LINE_LEN && !one_line.contains('\n') {
                    body.push_str(&one_line);
                } else if arguments.len() <= LINE_LEN && !arguments.contains('\n') {
                    body.push_str(&format!("{head}\n{arguments}\n)"));
                } else {
                    body.push_str(&format!(
                        "{head}\n    \"{name}\",\n    {restype},\n    {},\n)",
                        tuple(&args, "    ")
                    ));
                }
                body.push('\n');
            }
        }
    }

    // The imports are what the body uses, ordered as ruff's isort orders them: constants, then
    // classes, then the rest.
    let ctypes_names = [
        "CFUNCTYPE",
        "POINTER",
        "Structure",
        "c_bool",
        "c_char",
        "c_char_p",
        "c_int64",
        "c_size_t",
        "c_uint32",
        "c_uint64",
        "c_void_p",
    ];
    let used = |word: &str| {
        body.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .any(|w| w == word)
    };
    let mut out = PREAMBLE.to_owned();
    if used("enum") {
        out.push_str("import enum\n");
    }
    out.push_str("from ctypes import (\n");
    for name in ctypes_names.iter().filter(|n| used(n)) {
        out.push_str(&format!("    {name},\n"));
    }
    out.push_str(")\nfrom typing import Callable, Optional\n\nfrom ._ffi import declare\n\n");
    out.push_str(body.trim_start_matches('\n'));
    for line in out.lines() {
        assert!(
            line.len() <= LINE_LEN,
            "generated a line over {LINE_LEN} characters: `{line}`"
        );
    }
    out
}

#[test]
fn committed_python_bindings_match_a_fresh_generation() {
    let header = std::fs::read_to_string(header_path()).expect("read include/tollgate.h");
    let fresh = generate(&header);
    let path = committed_bindings();
    common::check_generated(
        &path,
        &fresh,
        "python/tollgate/_bindings.py, generated from include/tollgate.h,",
        "python_bindings",
    );
}
