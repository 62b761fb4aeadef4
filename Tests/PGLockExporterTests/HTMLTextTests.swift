import Testing

@testable import PGLockExporter

/// `HTMLText.escape`: what every value on the pages goes through (its fuzz target: html-text).
@Suite struct HTMLTextTests {
    @Test func markupAndControlCharactersAreShownNotInterpreted() {
        #expect(HTMLText.escape(#"<script>alert(1)</script>"><img src=x onerror='a'>&"#)
            == "&lt;script&gt;alert(1)&lt;/script&gt;&quot;&gt;&lt;img src=x onerror=&#39;a&#39;&gt;&amp;")
        #expect(HTMLText.escape("red\u{1B}[31m\u{7}bell\u{202E}gnp") == #"red\x1b[31m\x07bell\u{202e}gnp"#)
        #expect(HTMLText.escape("naïve ☃ $1") == "naïve ☃ $1")
    }

    @Test func queryValuesArePercentEncodedThenEscaped() {
        #expect(HTMLText.queryValue("or ders&x=\"1\"") == "or%20ders%26x%3D%221%22")
    }

    @Test func pageLinksCheckTheExternalURL() throws {
        #expect(try PageLinks.parse("https://ops.example.com/pg-lock") == "https://ops.example.com/pg-lock/")
        #expect(try PageLinks.parse("http://127.0.0.1:9817/") == "http://127.0.0.1:9817/")
        for (bad, line) in [
            ("ops.example.com", "must start with http:// or https://"), ("https:///x", "names no host"),
            ("https://x/?a=1", "must have no query (?) or fragment (#)"), ("https://x/#top", "must have no query (?) or fragment (#)"),
            ("https://x/a b", "must be a URL without spaces or control characters, at most 2048 bytes"),
        ] {
            #expect(throws: PageLinks.ParseError(description: line)) { try PageLinks.parse(bad) }
        }
        let links = PageLinks(externalURL: "https://x/", target: "eu.orders")
        #expect(links.treeURL == "https://x/tree?target=eu.orders")
        #expect(PageLinks(externalURL: "https://x/", target: nil).treeURL == "https://x/tree")
    }
}
