"""Write ingest/samples/pricing-and-support.pdf (run once; the PDF is committed)."""

from pathlib import Path

from reportlab.lib.pagesizes import A4
from reportlab.pdfgen import canvas

PAGES = [
    [
        "Halcyon pricing",
        "",
        "Halcyon is sold as a subscription, billed monthly.",
        "The Starter plan costs 29 euros per month and covers up to 5 devices.",
        "The Fleet plan costs 450 euros per month and covers up to 500 devices.",
        "Fleets larger than 500 devices get a quote from the sales team.",
        "Every plan includes the archive, alerting, and the web console.",
    ],
    [
        "Halcyon support",
        "",
        "Support answers by e-mail from Monday to Friday, 07:00 to 19:00 CET.",
        "Fleet customers also get an on-call phone line, staffed around the clock.",
        "The support team's mascot is a puffin named Skarv.",
        "Security reports go to the security desk and are answered within 24 hours.",
    ],
]


def main() -> None:
    out = Path(__file__).resolve().parents[1] / "ingest/samples/pricing-and-support.pdf"
    pdf = canvas.Canvas(str(out), pagesize=A4, invariant=True)
    pdf.setTitle("Halcyon pricing and support")
    for lines in PAGES:
        y = 780
        for line in lines:
            pdf.drawString(72, y, line)
            y -= 20
        pdf.showPage()
    pdf.save()
    print(out)


if __name__ == "__main__":
    main()
