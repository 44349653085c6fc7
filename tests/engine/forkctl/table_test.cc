#include "engine/forkctl/table.h"

#include <gtest/gtest.h>

namespace fe::engine::forkctl {
namespace {

TEST(TableTest, PadsColumnsToTheWidestCellAndRightAlignsNumbers) {
  Table table({{"NAME"}, {"MS", Table::Align::kRight}, {"NOTE"}});
  table.AddRow({"a", "1.000", "x"});
  table.AddRow({"longer-name", "12.5", ""});
  EXPECT_EQ(table.Render(),
            "NAME            MS  NOTE\n"
            "a            1.000  x\n"
            "longer-name   12.5\n");
}

TEST(TableTest, WithoutHeaderWidthsComeFromTheRowsOnly) {
  Table table({{"A-VERY-LONG-HEADER"}, {"B"}});
  table.AddRow({"x", "y"});
  EXPECT_EQ(table.Render(/*with_header=*/false), "x  y\n");
}

TEST(TableTest, MinimumWidthsHoldWithOrWithoutTheHeader) {
  Table table({{"A", Table::Align::kLeft, 4}, {"N", Table::Align::kRight, 3}, {"Z"}});
  table.AddRow({"x", "1", "z"});
  EXPECT_EQ(table.Render(), "A       N  Z\nx       1  z\n");
  EXPECT_EQ(table.Render(/*with_header=*/false), "x       1  z\n");
}

TEST(TableTest, ShortRowsArePaddedWithEmptyCells) {
  Table table({{"A"}, {"B"}, {"C"}});
  table.AddRow({"1"});
  EXPECT_EQ(table.rows(), 1u);
  EXPECT_EQ(table.Render(), "A  B  C\n1\n");
}

TEST(TableTest, AnEmptyTableIsItsHeader) {
  Table table({{"NAME"}, {"ID"}});
  EXPECT_EQ(table.Render(), "NAME  ID\n");
}

TEST(FormatBytesTest, UsesBinaryUnits) {
  EXPECT_EQ(FormatBytes(0), "0 B");
  EXPECT_EQ(FormatBytes(1023), "1023 B");
  EXPECT_EQ(FormatBytes(4096), "4.0 KiB");
  EXPECT_EQ(FormatBytes(uint64_t{320} << 20), "320.0 MiB");
  EXPECT_EQ(FormatBytes(uint64_t{10} << 30), "10.00 GiB");
}

TEST(FormatMillisTest, PrintsMicrosecondsAsMillisecondsWithThreeDecimals) {
  EXPECT_EQ(FormatMillis(0), "0.000");
  EXPECT_EQ(FormatMillis(1234), "1.234");
  EXPECT_EQ(FormatMillis(2500000), "2500.000");
}

}  // namespace
}  // namespace fe::engine::forkctl
