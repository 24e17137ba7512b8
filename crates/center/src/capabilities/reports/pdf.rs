//! A report as PDF, written with `pdf-writer`: A4 pages, the base-14 Helvetica fonts in
//! WinAnsiEncoding (every PDF reader has them, so no font file is embedded), headings,
//! paragraphs wrapped to the page and tables as rows of text at fixed column positions, page
//! breaks where a page is full and "page n of N" at each foot. Text outside WinAnsi is
//! replaced (`winansi`), never passed through as bytes a reader would misread.

use pdf_writer::{Content as Stream, Name, Pdf, Rect, Ref, Str};

use super::content::{Content, fmt_day};
use crate::console::fmt_utc;

const PAGE_W: f32 = 595.0;
const PAGE_H: f32 = 842.0;
const MARGIN: f32 = 50.0;
const BODY: f32 = 9.5;
const LEADING: f32 = 13.0;

/// A piece of the document.
#[derive(Debug, Clone, PartialEq)]
pub enum Block {
    Title(String),
    Heading(String),
    Para(String),
    /// Column headers with their widths in points, then rows.
    Table(Vec<(String, f32)>, Vec<Vec<String>>),
}

/// `s` in WinAnsiEncoding: ASCII and Latin-1 as they are, the typographic characters WinAnsi
/// has at 0x80-0x9F, control characters as spaces and anything else as `?`.
pub fn winansi(s: &str) -> Vec<u8> {
    s.chars()
        .map(|c| match c {
            ' '..='~' => c as u8,
            '\u{a0}'..='\u{ff}' => c as u32 as u8,
            '€' => 0x80,
            '‚' => 0x82,
            'ƒ' => 0x83,
            '„' => 0x84,
            '…' => 0x85,
            '†' => 0x86,
            '‡' => 0x87,
            'ˆ' => 0x88,
            '‰' => 0x89,
            'Š' => 0x8a,
            '‹' => 0x8b,
            'Œ' => 0x8c,
            'Ž' => 0x8e,
            '‘' => 0x91,
            '’' => 0x92,
            '“' => 0x93,
            '”' => 0x94,
            '•' => 0x95,
            '–' => 0x96,
            '—' => 0x97,
            '˜' => 0x98,
            '™' => 0x99,
            'š' => 0x9a,
            '›' => 0x9b,
            'œ' => 0x9c,
            'ž' => 0x9e,
            'Ÿ' => 0x9f,
            c if c.is_control() => b' ',
            _ => b'?',
        })
        .collect()
}

/// Helvetica's average advance is about half the font size; text is cut or wrapped with this
/// estimate (a little generous, so nothing runs off the page).
fn chars_for(width: f32, size: f32) -> usize {
    ((width / (size * 0.55)).floor() as usize).max(1)
}

fn wrap(text: &str, max: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        let mut word = word.to_string();
        while word.chars().count() > max {
            let head: String = word.chars().take(max).collect();
            word = word.chars().skip(max).collect();
            if !line.is_empty() {
                lines.push(std::mem::take(&mut line));
            }
            lines.push(head);
        }
        if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > max {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(&word);
    }
    if !line.is_empty() || lines.is_empty() {
        lines.push(line);
    }
    lines
}

fn clip(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_string()
    } else {
        let mut s: String = text.chars().take(max.saturating_sub(1)).collect();
        s.push('…');
        s
    }
}

/// A text run at a place on a page.
struct Run {
    x: f32,
    y: f32,
    bold: bool,
    size: f32,
    text: String,
}

/// Lays the blocks out on pages.
fn layout(blocks: &[Block]) -> Vec<Vec<Run>> {
    let mut pages: Vec<Vec<Run>> = vec![Vec::new()];
    let bottom = MARGIN + 20.0;
    let mut y = PAGE_H - MARGIN;
    let width = PAGE_W - 2.0 * MARGIN;
    // Moves to a new page unless `need` points still fit.
    let room = |pages: &mut Vec<Vec<Run>>, y: &mut f32, need: f32| {
        if *y - need < bottom {
            pages.push(Vec::new());
            *y = PAGE_H - MARGIN;
        }
    };
    let push = |pages: &mut Vec<Vec<Run>>, r: Run| pages.last_mut().expect("a page").push(r);
    for b in blocks {
        match b {
            Block::Title(t) => {
                for line in wrap(t, chars_for(width, 16.0)) {
                    room(&mut pages, &mut y, 22.0);
                    y -= 20.0;
                    push(
                        &mut pages,
                        Run {
                            x: MARGIN,
                            y,
                            bold: true,
                            size: 16.0,
                            text: line,
                        },
                    );
                }
                y -= 6.0;
            }
            Block::Heading(t) => {
                // A heading is not left alone at the foot of a page.
                room(&mut pages, &mut y, 18.0 + 3.0 * LEADING);
                y -= 18.0;
                push(
                    &mut pages,
                    Run {
                        x: MARGIN,
                        y,
                        bold: true,
                        size: 12.0,
                        text: clip(t, chars_for(width, 12.0)),
                    },
                );
                y -= 4.0;
            }
            Block::Para(t) => {
                for line in wrap(t, chars_for(width, BODY)) {
                    room(&mut pages, &mut y, LEADING);
                    y -= LEADING;
                    push(
                        &mut pages,
                        Run {
                            x: MARGIN,
                            y,
                            bold: false,
                            size: BODY,
                            text: line,
                        },
                    );
                }
            }
            Block::Table(cols, rows) => {
                let header = |pages: &mut Vec<Vec<Run>>, y: f32| {
                    let mut x = MARGIN;
                    for (name, w) in cols {
                        push(
                            pages,
                            Run {
                                x,
                                y,
                                bold: true,
                                size: BODY,
                                text: clip(name, chars_for(*w - 4.0, BODY)),
                            },
                        );
                        x += w;
                    }
                };
                room(&mut pages, &mut y, 2.0 * LEADING);
                y -= LEADING;
                header(&mut pages, y);
                for row in rows {
                    if y - LEADING < bottom {
                        pages.push(Vec::new());
                        y = PAGE_H - MARGIN - LEADING;
                        // Each page of a long table starts with its header again.
                        header(&mut pages, y);
                    }
                    y -= LEADING;
                    let mut x = MARGIN;
                    for (cell, (_, w)) in row.iter().zip(cols) {
                        push(
                            &mut pages,
                            Run {
                                x,
                                y,
                                bold: false,
                                size: BODY,
                                text: clip(cell, chars_for(*w - 4.0, BODY)),
                            },
                        );
                        x += w;
                    }
                }
                y -= 4.0;
            }
        }
    }
    pages
}

/// The blocks as a PDF document.
pub fn render_blocks(title: &str, blocks: &[Block]) -> Vec<u8> {
    let pages = layout(blocks);
    let n = pages.len();
    let catalog = Ref::new(1);
    let tree = Ref::new(2);
    let regular = Ref::new(3);
    let bold = Ref::new(4);
    let info = Ref::new(5);
    let page_ref = |i: usize| Ref::new(10 + 2 * i as i32);
    let content_ref = |i: usize| Ref::new(11 + 2 * i as i32);
    let mut pdf = Pdf::new();
    pdf.catalog(catalog).pages(tree);
    pdf.pages(tree).kids((0..n).map(page_ref)).count(n as i32);
    pdf.type1_font(regular)
        .base_font(Name(b"Helvetica"))
        .encoding_predefined(Name(b"WinAnsiEncoding"));
    pdf.type1_font(bold)
        .base_font(Name(b"Helvetica-Bold"))
        .encoding_predefined(Name(b"WinAnsiEncoding"));
    pdf.document_info(info)
        .title(pdf_writer::TextStr(title))
        .producer(pdf_writer::TextStr("Hostward"));
    for (i, runs) in pages.iter().enumerate() {
        let mut page = pdf.page(page_ref(i));
        page.media_box(Rect::new(0.0, 0.0, PAGE_W, PAGE_H))
            .parent(tree)
            .contents(content_ref(i));
        page.resources()
            .fonts()
            .pair(Name(b"F1"), regular)
            .pair(Name(b"F2"), bold);
        drop(page);
        let mut c = Stream::new();
        let mut show = |x: f32, y: f32, bold: bool, size: f32, text: &str| {
            let bytes = winansi(text);
            c.begin_text();
            c.set_font(Name(if bold { b"F2" } else { b"F1" }), size);
            c.set_text_matrix([1.0, 0.0, 0.0, 1.0, x, y]);
            c.show(Str(&bytes));
            c.end_text();
        };
        for r in runs {
            show(r.x, r.y, r.bold, r.size, &r.text);
        }
        show(
            MARGIN,
            MARGIN - 10.0,
            false,
            8.0,
            &format!("{title} - page {} of {n}", i + 1),
        );
        pdf.stream(content_ref(i), &c.finish());
    }
    pdf.finish()
}

fn sev_row(label: &str, v: &[i64; 4]) -> Vec<String> {
    let mut r = vec![label.to_string()];
    r.extend(v.iter().map(i64::to_string));
    r.push(v.iter().sum::<i64>().to_string());
    r
}

/// The report's content as blocks, in the order the HTML shows it.
pub fn blocks(c: &Content) -> Vec<Block> {
    let f = &c.facts;
    let mut b = vec![
        Block::Title(c.title()),
        Block::Para(format!(
            "Project {} - {} report from {} 00:00 to {} 24:00 UTC - made {} UTC.",
            c.project_name,
            c.range_kind,
            fmt_day(c.range.from),
            fmt_day(c.range.to - 1),
            fmt_utc(c.generated_at)
        )),
        Block::Heading(format!("Security score: {} of 100", c.score)),
        Block::Table(
            vec![
                ("Category".into(), 200.0),
                ("Points lost".into(), 100.0),
                ("Of".into(), 60.0),
            ],
            c.categories
                .iter()
                .map(|k| {
                    vec![
                        k.name.clone(),
                        format!("{:.1}", k.deducted),
                        format!("{}", k.max),
                    ]
                })
                .collect(),
        ),
        Block::Heading("Score trend".into()),
        Block::Table(
            vec![
                ("Day".into(), 120.0),
                ("Score".into(), 80.0),
                ("Open vulnerabilities".into(), 140.0),
                ("Open alarms".into(), 100.0),
            ],
            c.trend
                .iter()
                .map(|t| match t.score {
                    Some(s) => vec![
                        t.date.clone(),
                        s.to_string(),
                        t.vulns.unwrap_or(0).to_string(),
                        t.alarms.unwrap_or(0).to_string(),
                    ],
                    None => vec![
                        t.date.clone(),
                        "no data".into(),
                        String::new(),
                        String::new(),
                    ],
                })
                .collect(),
        ),
    ];
    let (alarms, occurrences) = c.alarm_totals();
    let [unhandled, handled, ignored] = c.alarms_by_state();
    b.push(Block::Heading(format!("Alarms: {alarms}")));
    b.push(Block::Para(format!(
        "{alarms} alarm(s), {occurrences} occurrence(s) in the range: {unhandled} unhandled, {handled} handled, {ignored} ignored."
    )));
    if !f.alarms.is_empty() {
        b.push(Block::Table(
            vec![
                ("Type".into(), 170.0),
                ("Severity".into(), 70.0),
                ("State".into(), 80.0),
                ("Alarms".into(), 70.0),
                ("Occurrences".into(), 90.0),
            ],
            f.alarms
                .iter()
                .map(|g| {
                    vec![
                        g.alarm_type.clone(),
                        g.severity.clone(),
                        g.state.clone(),
                        g.alarms.to_string(),
                        g.occurrences.to_string(),
                    ]
                })
                .collect(),
        ));
    }
    let sev_cols = || -> Vec<(String, f32)> {
        vec![
            ("".into(), 170.0),
            ("Critical".into(), 60.0),
            ("High".into(), 60.0),
            ("Medium".into(), 60.0),
            ("Low".into(), 60.0),
            ("Total".into(), 60.0),
        ]
    };
    b.push(Block::Heading("Vulnerabilities".into()));
    b.push(Block::Table(
        sev_cols(),
        vec![
            sev_row("found in the range", &f.vulns_found),
            sev_row("fixed in the range", &f.vulns_fixed),
            sev_row("ignored in the range", &f.vulns_ignored),
            sev_row("open now", &f.vulns_open),
        ],
    ));
    b.push(Block::Heading("Baseline checks".into()));
    b.push(Block::Table(
        sev_cols(),
        vec![sev_row("failed, not ignored", &f.baseline_failed)],
    ));
    if !f.failed_checks.is_empty() {
        b.push(Block::Table(
            vec![
                ("Policy".into(), 110.0),
                ("Check".into(), 255.0),
                ("Severity".into(), 70.0),
                ("Servers".into(), 60.0),
            ],
            f.failed_checks
                .iter()
                .map(|k| {
                    vec![
                        k.policy.clone(),
                        k.title.clone(),
                        k.severity.clone(),
                        k.servers.to_string(),
                    ]
                })
                .collect(),
        ));
    }
    b.push(Block::Heading(format!("Servers: {}", f.servers.len())));
    b.push(Block::Table(
        vec![
            ("Server".into(), 150.0),
            ("Agent".into(), 75.0),
            ("Protection".into(), 75.0),
            ("Risk".into(), 55.0),
            ("Alarms".into(), 50.0),
            ("Vulns".into(), 45.0),
            ("Failed checks".into(), 45.0),
        ],
        f.servers
            .iter()
            .map(|s| {
                vec![
                    s.name.clone(),
                    s.agent_status.clone(),
                    s.protection_status.clone(),
                    s.risk_status.clone(),
                    s.alarms.to_string(),
                    s.open_vulns.to_string(),
                    s.failed_checks.to_string(),
                ]
            })
            .collect(),
    ));
    b.push(Block::Heading("Servers added in the range".into()));
    if f.added.is_empty() {
        b.push(Block::Para("None.".into()));
    } else {
        b.push(Block::Table(
            vec![("Server".into(), 200.0), ("Registered (UTC)".into(), 150.0)],
            f.added
                .iter()
                .map(|s| vec![s.name.clone(), fmt_utc(s.created_at)])
                .collect(),
        ));
    }
    b.push(Block::Heading("Protection lost in the range".into()));
    if f.lost_protection.is_empty() {
        b.push(Block::Para("None.".into()));
    } else {
        b.push(Block::Table(
            vec![
                ("Server".into(), 150.0),
                ("When (UTC)".into(), 120.0),
                ("Status".into(), 90.0),
                ("Why".into(), 135.0),
            ],
            f.lost_protection
                .iter()
                .map(|p| {
                    vec![
                        p.server_name.clone(),
                        fmt_utc(p.ts),
                        p.status.clone(),
                        p.reason.replace('_', " "),
                    ]
                })
                .collect(),
        ));
    }
    if !f.regained_protection.is_empty() {
        b.push(Block::Para(format!(
            "Protection came back {} time(s) in the range.",
            f.regained_protection.len()
        )));
    }
    b.push(Block::Heading("Notes".into()));
    for n in &c.notes {
        b.push(Block::Para(format!("- {n}")));
    }
    b
}

pub fn render(c: &Content) -> Vec<u8> {
    render_blocks(&c.title(), &blocks(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_outside_winansi_is_replaced() {
        assert_eq!(winansi("web-1 (a)\\"), b"web-1 (a)\\".to_vec());
        assert_eq!(winansi("é€—…"), vec![0xe9, 0x80, 0x97, 0x85]);
        assert_eq!(winansi("服务器\u{1F600}"), b"????".to_vec());
        assert_eq!(winansi("a\tb\n"), b"a b ".to_vec());
    }

    #[test]
    fn wrapping_and_clipping_keep_every_word() {
        assert_eq!(wrap("aa bb cc", 5), ["aa bb", "cc"]);
        assert_eq!(wrap("abcdefgh", 3), ["abc", "def", "gh"]);
        assert_eq!(wrap("", 3), [""]);
        assert_eq!(clip("abcdef", 4), "abc…");
        assert_eq!(clip("abc", 4), "abc");
    }

    /// Counts `needle` in `hay`.
    fn count(hay: &[u8], needle: &[u8]) -> usize {
        hay.windows(needle.len()).filter(|w| *w == needle).count()
    }

    #[test]
    fn a_long_document_is_a_valid_pdf_with_numbered_pages() {
        let rows: Vec<Vec<String>> = (0..150)
            .map(|i| vec![format!("server-{i} (a)"), i.to_string()])
            .collect();
        let pdf = render_blocks(
            "T",
            &[
                Block::Title("Report".into()),
                Block::Para("word ".repeat(400)),
                Block::Para("caf\u{e9}".into()),
                Block::Table(
                    vec![("Server".into(), 200.0), ("Alarms".into(), 80.0)],
                    rows,
                ),
            ],
        );
        assert!(pdf.starts_with(b"%PDF-1."));
        let tail = String::from_utf8_lossy(&pdf[pdf.len() - 64..]).to_string();
        assert!(
            tail.contains("startxref") && tail.trim_end().ends_with("%%EOF"),
            "{tail}"
        );
        let pages = count(&pdf, b"/Type /Page\n") + count(&pdf, b"/Type /Page ");
        assert!(pages >= 4, "{pages} pages");
        assert_eq!(
            count(&pdf, format!("page {pages} of {pages}").as_bytes()),
            1
        );
        assert_eq!(count(&pdf, b"/WinAnsiEncoding"), 2);
        // Parentheses are escaped or balanced; Latin-1 goes out as a hex string.
        assert_eq!(count(&pdf, b"(server-149 (a))"), 1);
        assert_eq!(count(&pdf, b"<636166E9>"), 1);
        // The table's header is repeated on each page it continues on.
        assert!(count(&pdf, b"(Server)") >= 3);
        // Every object the cross-reference table lists starts where it says.
        let xref = pdf.windows(5).rposition(|w| w == b"xref\n").unwrap();
        let table = String::from_utf8_lossy(&pdf[xref..]).to_string();
        for line in table
            .lines()
            .skip(3)
            .take_while(|l| l.len() == 18 || l.len() == 19)
        {
            if line.ends_with('n') || line.trim_end().ends_with(" n") {
                let off: usize = line[..10].parse().unwrap();
                assert!(
                    pdf[off..].iter().take_while(|b| b.is_ascii_digit()).count() > 0,
                    "object at {off} does not start with its number"
                );
            }
        }
    }
}
