import Testing

@testable import PGLockExporter

@Suite struct ExpositionWriterTests {
    @Test func escapesLabelValuesAndHelp() {
        var w = ExpositionWriter()
        w.family("pg_test", .gauge, help: "line one\nback\\slash")
        w.sample("pg_test", ["application_name": "a \"quoted\"\nname\\x"], 1)
        let text = String(decoding: w.bytes, as: UTF8.self)
        #expect(
            text == """
                # HELP pg_test line one\\nback\\\\slash
                # TYPE pg_test gauge
                pg_test{application_name="a \\"quoted\\"\\nname\\\\x"} 1

                """)
    }

    @Test func formatsNumbersTheWayPrometheusParsesThem() {
        #expect(ExpositionWriter.format(3) == "3")
        #expect(ExpositionWriter.format(-2) == "-2")
        #expect(ExpositionWriter.format(0.25) == "0.25")
        #expect(ExpositionWriter.format(.nan) == "NaN")
        #expect(ExpositionWriter.format(.infinity) == "+Inf")
        #expect(ExpositionWriter.format(-.infinity) == "-Inf")
        #expect(ExpositionWriter.format(1e20) == "1e+20")
    }

    @Test func samplesWithoutLabels() {
        var w = ExpositionWriter()
        w.sample("pg_up", 1)
        w.sample("pg_x", [:], 2.5)
        #expect(String(decoding: w.bytes, as: UTF8.self) == "pg_up 1\npg_x 2.5\n")
    }
}
